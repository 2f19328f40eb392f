package io.anneal.runtime.output;

import io.anneal.api.config.ConfigView;
import io.anneal.api.extension.ExtensionContext;
import io.anneal.api.extension.ExtensionFactory;
import io.anneal.api.train.MetricsSink;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Clock;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * {@code pipeline.metrics = [tensorboard]}: TensorBoard event files in {@code <stage dir>/tensorboard/}
 * ({@code tensorboard --logdir runs/NAME} shows each stage as a run), every numeric metric of a
 * step as a scalar under its TRL name.
 *
 * <p>The file is TFRecord framing around serialized {@code Event} protos, written by hand (no
 * protobuf dependency). TFRecord (tensorflow/core/lib/io/record_writer.cc, tensorboard's
 * tensorboard/summary/writer/record_writer.py): per record, the data length as uint64 little endian,
 * the masked CRC32C of those 8 bytes (uint32 LE), the data, the masked CRC32C of the data (uint32 LE);
 * masked = ((crc >>> 15) | (crc << 17)) + 0xa282ead8 (tensorflow/core/lib/hash/crc32c.h, Mask).
 * Field numbers (tensorboard/compat/proto/event.proto, summary.proto):
 * {@code Event { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3;
 * Summary summary = 5; SessionLog session_log = 7; } }},
 * {@code Summary { repeated Value value = 1; }}, {@code Summary.Value { string tag = 1; float simple_value = 2; }},
 * {@code SessionLog { SessionStatus status = 1; }} with {@code START = 1}.
 *
 * <p>Each run (fresh or resumed) writes a new file, named as TensorFlow names them
 * ({@code events.out.tfevents.<seconds>.<host>.<pid>}), starting with {@code file_version =
 * "brain.Event:2"} and a {@code SessionLog START}: TensorBoard's EventAccumulator then purges the
 * events at or after that step from the earlier files (tensorboard/backend/event_processing/
 * event_accumulator.py, _CheckForRestartAndMaybePurge), so a resumed stage shows each step once, as
 * {@code metrics.jsonl} does. START is at step 0 for a fresh run and at the checkpoint's step + 1 on
 * resume. The file is created at the first record, so a run refused before it logs leaves none.
 */
public final class TensorBoardMetricsSink implements MetricsSink {
    public static final String TYPE = "tensorboard";
    /** Event.file_version of the current format (event.proto: "brain.Event:2"). */
    static final String FILE_VERSION = "brain.Event:2";
    private static final int MASK_DELTA = 0xa282ead8;

    private final String folderName;
    private final Clock clock;
    private Path folder;
    private Path file;
    private OutputStream stream;
    private long startStep;

    public TensorBoardMetricsSink(String folderName) {
        this(folderName, Clock.systemUTC());
    }

    TensorBoardMetricsSink(String folderName, Clock clock) {
        this.folderName = folderName;
        this.clock = clock;
    }

    /** The factory of {@code pipeline.metrics} type {@code tensorboard} (key {@code folder}). */
    public static ExtensionFactory<MetricsSink> factory() {
        return ExtensionFactory.of(MetricsSink.class, TYPE,
                "TensorBoard event files (scalars) in each stage's folder, read by tensorboard --logdir",
                (ConfigView config, ExtensionContext context) -> {
                    String folder = config.getString("folder");
                    if (folder.isBlank() || Path.of(folder).isAbsolute() || folder.contains("..")) {
                        throw config.invalid("folder", "a folder name inside the stage's folder, such as tensorboard",
                                "'" + folder + "'");
                    }
                    return new TensorBoardMetricsSink(folder);
                });
    }

    /** The event file of this run (null before the first record). */
    public synchronized Path file() {
        return file;
    }

    @Override
    public synchronized void open(Path stageDirectory, boolean resume, PrintStream console) {
        close();
        folder = stageDirectory.resolve(folderName);
        startStep = 0;
    }

    @Override
    public synchronized void restartAt(long step) {
        // events of steps after the checkpoint are trained again: TensorBoard drops them at this START
        startStep = step + 1;
    }

    @Override
    public synchronized void log(long step, Map<String, ?> metrics) {
        ByteArrayOutputStream summary = new ByteArrayOutputStream();
        for (Map.Entry<String, ?> m : metrics.entrySet()) {
            if (m.getValue() instanceof Number n) {
                ByteArrayOutputStream value = new ByteArrayOutputStream();
                writeBytes(value, 1, m.getKey().getBytes(StandardCharsets.UTF_8)); // Value.tag = 1
                writeFloat(value, 2, n.floatValue()); // Value.simple_value = 2
                writeBytes(summary, 1, value.toByteArray()); // Summary.value = 1 (repeated)
            }
        }
        ByteArrayOutputStream event = eventHeader(step);
        writeBytes(event, 5, summary.toByteArray()); // Event.summary = 5
        write(event.toByteArray());
    }

    private ByteArrayOutputStream eventHeader(long step) {
        ByteArrayOutputStream event = new ByteArrayOutputStream();
        writeDouble(event, 1, clock.millis() / 1000.0); // Event.wall_time = 1, seconds since the epoch
        writeVarint(event, 2, step); // Event.step = 2
        return event;
    }

    private void write(byte[] event) {
        try {
            if (stream == null) {
                if (folder == null) {
                    throw new IllegalStateException("the TensorBoard sink was not opened on a stage folder");
                }
                Files.createDirectories(folder);
                file = folder.resolve("events.out.tfevents." + clock.millis() / 1000 + "." + host() + "." + ProcessHandle.current().pid());
                stream = Files.newOutputStream(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
                ByteArrayOutputStream version = eventHeader(0);
                writeBytes(version, 3, FILE_VERSION.getBytes(StandardCharsets.UTF_8)); // Event.file_version = 3
                stream.write(record(version.toByteArray()));
                ByteArrayOutputStream sessionLog = new ByteArrayOutputStream();
                writeVarint(sessionLog, 1, 1); // SessionLog.status = 1: START = 1
                ByteArrayOutputStream start = eventHeader(startStep);
                writeBytes(start, 7, sessionLog.toByteArray()); // Event.session_log = 7
                stream.write(record(start.toByteArray()));
            }
            stream.write(record(event));
            stream.flush(); // as metrics.jsonl: a crash loses nothing already logged
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write TensorBoard events to " + (file != null ? file : folder), e);
        }
    }

    private static String host() {
        String host = System.getenv("HOSTNAME");
        if (host == null || host.isBlank()) {
            try {
                host = java.net.InetAddress.getLocalHost().getHostName();
            } catch (IOException e) {
                host = "localhost";
            }
        }
        return host.replaceAll("[^A-Za-z0-9._-]", "_");
    }

    /** One TFRecord: length, masked CRC32C of the length, data, masked CRC32C of the data. */
    static byte[] record(byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + 4 + data.length + 4).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(data.length);
        b.putInt(maskedCrc32c(b.array(), 0, 8));
        b.put(data);
        b.putInt(maskedCrc32c(data, 0, data.length));
        return b.array();
    }

    /** TensorFlow's masked CRC32C (crc32c.h): rotate right by 15 bits, add 0xa282ead8. */
    static int maskedCrc32c(byte[] bytes, int offset, int length) {
        CRC32C crc = new CRC32C();
        crc.update(bytes, offset, length);
        int c = (int) crc.getValue();
        return ((c >>> 15) | (c << 17)) + MASK_DELTA;
    }

    // Protocol buffer wire format (protobuf.dev/programming-guides/encoding): key = field << 3 | wire type.
    private static void writeKey(ByteArrayOutputStream out, int field, int wireType) {
        writeRawVarint(out, ((long) field << 3) | wireType);
    }

    private static void writeVarint(ByteArrayOutputStream out, int field, long value) {
        writeKey(out, field, 0);
        writeRawVarint(out, value);
    }

    private static void writeRawVarint(ByteArrayOutputStream out, long value) {
        long v = value;
        while ((v & ~0x7FL) != 0) {
            out.write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        out.write((int) v);
    }

    private static void writeDouble(ByteArrayOutputStream out, int field, double value) {
        writeKey(out, field, 1);
        out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putDouble(value).array());
    }

    private static void writeFloat(ByteArrayOutputStream out, int field, float value) {
        writeKey(out, field, 5);
        out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(value).array());
    }

    private static void writeBytes(ByteArrayOutputStream out, int field, byte[] bytes) {
        writeKey(out, field, 2);
        writeRawVarint(out, bytes.length);
        out.writeBytes(bytes);
    }

    @Override
    public synchronized void close() {
        if (stream != null) {
            try {
                stream.close();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot close " + file, e);
            } finally {
                stream = null;
            }
        }
    }
}
