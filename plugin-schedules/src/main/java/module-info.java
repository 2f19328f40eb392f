/** Anneal plugin 'schedules'. A plugin exports nothing: the runtime reaches it through the services it provides. */
module io.anneal.schedules {
    requires io.anneal.api;
    requires io.anneal.toolkit;
    requires com.fasterxml.jackson.core;

    provides io.anneal.api.plugin.Plugin with io.anneal.schedules.SchedulesPlugin;
}
