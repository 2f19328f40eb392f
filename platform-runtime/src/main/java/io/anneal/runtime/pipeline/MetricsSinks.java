package io.anneal.runtime.pipeline;

import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.train.MetricsSink;
import io.anneal.runtime.config.HoconConfigView;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The {@code pipeline.metrics} sinks of one stage as one {@link MetricsSink}: each built through the
 * plugin registry (a plugin's sink type works like the built-in {@code jsonl} and {@code tensorboard}),
 * opened on the stage's folder, and given every call in the order listed.
 */
final class MetricsSinks implements MetricsSink {
    private final List<MetricsSink> sinks;

    private MetricsSinks(List<MetricsSink> sinks) {
        this.sinks = sinks;
    }

    static MetricsSinks open(List<HoconConfigView> blocks, ExtensionContext extensions, Path stageDirectory, boolean resume,
                             PrintStream out) {
        List<MetricsSink> sinks = new ArrayList<>();
        MetricsSinks all = new MetricsSinks(sinks);
        try {
            for (HoconConfigView block : blocks) {
                MetricsSink sink = extensions.build(MetricsSink.class, block);
                sinks.add(sink);
                sink.open(stageDirectory, resume, out);
            }
        } catch (RuntimeException e) {
            all.close();
            throw e;
        }
        return all;
    }

    @Override
    public void log(long step, Map<String, ?> metrics) {
        for (MetricsSink sink : sinks) {
            sink.log(step, metrics);
        }
    }

    @Override
    public void restartAt(long step) {
        for (MetricsSink sink : sinks) {
            sink.restartAt(step);
        }
    }

    @Override
    public void close() {
        RuntimeException first = null;
        for (MetricsSink sink : sinks) {
            try {
                sink.close();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
