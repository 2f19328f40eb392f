package io.anneal.runtime.train.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.anneal.api.model.StepGraphs.DeviceMemory;
import org.junit.jupiter.api.Test;

/** bench-train's allocator figures: bytes to MiB, the peaks over the warm-up and the timed steps. */
class AllocatorFiguresTest {
    private static final long MIB = 1 << 20;

    @Test
    void thePeaksAreTheLargerOfTheWarmUpsAndTheTimedStepsInMib() {
        // the H200's 2 x 2048 run (docs/benchmarks/2026-12-04-h200-weight-recast), with a timed
        // allocated peak under the warm-up's (a replay allocates nothing) and a reserved one over it
        DeviceMemory setup = new DeviceMemory(3330 * MIB + 300_000, 3330 * MIB, 3344 * MIB, 4446 * MIB, 4033 * MIB);
        DeviceMemory warmUp = new DeviceMemory(4440 * MIB, 7583 * MIB, 7998 * MIB, 7998 * MIB, 8709 * MIB);
        DeviceMemory timed = new DeviceMemory(4440 * MIB, 4441 * MIB + MIB / 2, 7998 * MIB, 8000 * MIB, 8709 * MIB);
        ObjectNode result = new ObjectMapper().createObjectNode();
        TrainStepBenchmark.allocatorFigures(result, setup, warmUp, timed);
        assertEquals(7583, result.get("peak_allocated_mib").asLong());
        assertEquals(8000, result.get("peak_reserved_mib").asLong());
        ObjectNode phases = (ObjectNode) result.get("allocator");
        assertEquals(3330, phases.get("after_setup").get("allocated_mib").asLong(), "300,000 bytes round away");
        assertEquals(4446, phases.get("after_setup").get("peak_reserved_mib").asLong());
        assertEquals(4442, phases.get("timed_steps").get("peak_allocated_mib").asLong(), "half a MiB rounds up");
        assertEquals(8709, phases.get("warm_up_and_capture").get("device_used_mib").asLong());
        assertEquals("allocator: after setup 3,330 MiB allocated (the model and the optimizer's state), 3,344 reserved, "
                        + "4,033 device used; warm-up and capture: peak 7,583 allocated, 7,998 reserved; timed steps: peak "
                        + "8,000 reserved, 8,709 device used",
                TrainStepBenchmark.allocatorLine(setup, warmUp, timed));
    }
}
