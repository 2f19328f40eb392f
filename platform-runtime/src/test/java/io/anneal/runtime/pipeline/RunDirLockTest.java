package io.anneal.runtime.pipeline;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.anneal.api.InputException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RunDirLockTest {

    @Test
    void aSecondRunIntoTheSameFolderIsRefusedNamingTheHoldersPid(@TempDir Path dir) throws Exception {
        Path runDir = dir.resolve("runs/x");
        try (RunDirLock held = RunDirLock.acquire(runDir)) {
            InputException e = assertThrows(InputException.class, () -> RunDirLock.acquire(runDir));
            assertTrue(e.getMessage().contains(runDir.toString()), e.getMessage());
            assertTrue(e.getMessage().contains("pid " + ProcessHandle.current().pid()), e.getMessage());
        }
        RunDirLock.acquire(runDir).close(); // released at the end of the run
    }
}
