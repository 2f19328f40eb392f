package io.anneal.runtime.output;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The console of a run: what is printed goes to the terminal and, once {@link #logTo} names it, to
 * {@code <run-dir>/run.log} too (appended, so a resumed run continues the story). A progress line
 * redrawn in place ({@link #transientLine}) goes to the terminal only, and is cleared before any
 * other output so the two never share a line. {@link #errors()} is the same for the error stream.
 */
public final class RunConsole extends PrintStream {
    private final Sink sink;
    private final PrintStream errors;

    public RunConsole(PrintStream terminal, PrintStream terminalErrors) {
        this(new Sink(terminal, new Log(terminalErrors)), terminalErrors);
    }

    private RunConsole(Sink sink, PrintStream terminalErrors) {
        super(sink, true, StandardCharsets.UTF_8);
        this.sink = sink;
        this.errors = new PrintStream(new Sink(terminalErrors, sink.log, sink), true, StandardCharsets.UTF_8);
    }

    /** The error stream, also written to the log. */
    public PrintStream errors() {
        return errors;
    }

    /** From now on everything is also appended to {@code file}; a file that cannot be opened is a warning. */
    public void logTo(Path file) {
        flush();
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            sink.log.open(Files.newOutputStream(file, StandardOpenOption.CREATE, StandardOpenOption.APPEND), file);
        } catch (IOException e) {
            println("anneal: warning: cannot write the console log " + file + " (" + e.getMessage() + ")");
        }
    }

    /** A line redrawn in place on the terminal (a carriage return, the line, clear to its end); not logged. */
    public void transientLine(String line) {
        flush();
        sink.transientLine(line);
    }

    @Override
    public void close() {
        flush();
        errors.flush();
        sink.log.close();
    }

    /** The log file, shared by the output and error sinks. */
    private static final class Log {
        /** Where a log that stops being written says so: the terminal's error stream, never the log itself. */
        private final PrintStream terminalErrors;
        private OutputStream file;
        private Path path;
        /** The warning that the log stopped, until the terminal's current line ends. */
        private String unsaid;

        Log(PrintStream terminalErrors) {
            this.terminalErrors = terminalErrors;
        }

        synchronized void open(OutputStream f, Path where) {
            close();
            file = f;
            path = where;
        }

        synchronized void write(byte[] b, int off, int len) {
            if (file != null) {
                try {
                    file.write(b, off, len);
                    file.flush();
                } catch (IOException e) {
                    // a full disk must not stop the run over its log, nor end the log unsaid
                    close();
                    unsaid = "anneal: warning: cannot write the console log " + path + " any more (" + e.getMessage()
                            + "); the run goes on, and only the terminal shows what follows";
                }
            }
            if (unsaid != null && len > 0 && b[off + len - 1] == '\n') {
                sayIt(); // after the line the terminal is in the middle of
            }
        }

        /** The warning of a log that stopped being written, on a line of its own. */
        private void sayIt() {
            terminalErrors.println(unsaid);
            terminalErrors.flush();
            unsaid = null;
        }

        synchronized void close() {
            if (unsaid != null && file == null) {
                sayIt();
            }
            if (file != null) {
                try {
                    file.close();
                } catch (IOException e) {
                    // nothing more can be done for a log
                }
                file = null;
            }
        }
    }

    private static final class Sink extends OutputStream {
        private final PrintStream terminal;
        private final Log log;
        private final Sink transientOwner; // the sink whose terminal shows the progress line
        private boolean transientShown;

        Sink(PrintStream terminal, Log log) {
            this(terminal, log, null);
        }

        Sink(PrintStream terminal, Log log, Sink transientOwner) {
            this.terminal = terminal;
            this.log = log;
            this.transientOwner = transientOwner;
        }

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            if (len == 0) {
                return;
            }
            Sink owner = transientOwner == null ? this : transientOwner;
            synchronized (owner) {
                if (owner.transientShown) {
                    owner.terminal.print("\r\u001b[K");
                    owner.terminal.flush();
                    owner.transientShown = false;
                }
            }
            terminal.write(b, off, len);
            log.write(b, off, len);
        }

        synchronized void transientLine(String line) {
            terminal.print("\r" + line + "\u001b[K");
            terminal.flush();
            transientShown = true;
        }

        @Override
        public void flush() {
            terminal.flush();
        }
    }
}
