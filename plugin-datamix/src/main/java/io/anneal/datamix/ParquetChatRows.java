package io.anneal.datamix;

import io.anneal.api.InputException;
import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.api.data.Message;
import io.anneal.toolkit.chat.PreferenceRecord;
import io.anneal.datamix.parquet.ParquetFile;
import io.anneal.datamix.parquet.TurnsColumn;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Chat and preference records of a Parquet file with the JSONL forms' columns: {@code messages}
 * (a list of struct{role, content}); {@code chosen}/{@code rejected}, with or without
 * {@code prompt}, each a list of messages or a string. Read row group by row group, a page at a
 * time per column, so a file larger than memory streams; with the token cache the index pass is
 * the only reader. A record's location is its row group and its row in it.
 */
final class ParquetChatRows {
    private ParquetChatRows() {
    }

    /** A record's location packed into one long (the index keeps one per record): row group above bit 40, row below. */
    static long location(int rowGroup, long row) {
        return (long) rowGroup << 40 | row;
    }

    /** {@code row group g, row r} of a packed location (rows counted from 0, as pyarrow and DuckDB count them). */
    static String describe(long location) {
        return "row group " + (location >>> 40) + ", row " + (location & ((1L << 40) - 1));
    }

    /** Hands every row of the file's {@code messages} column to {@code sink}: a chat record, or what was wrong with it. */
    static void scan(Path path, SourceFile.RowSink sink) {
        try (ParquetFile file = ParquetFile.open(path)) {
            TurnsColumn messages = TurnsColumn.of(file, "messages");
            if (messages == null || !messages.isList()) {
                throw new InputException(path + ": expected a column messages (a list of struct{role: string, content: string}), "
                        + "found " + (messages == null ? columns(file) : file.root().child("messages").describe()));
            }
            long row = 0;
            for (int g = 0; g < file.rowGroups(); g++) {
                messages.startRowGroup(g);
                long rows = file.rows(g);
                for (long r = 0; r < rows; r++, row++) {
                    TurnsColumn.Turns t = messages.next(Message.USER);
                    String problem = t.problem() != null ? t.problem() : rolesProblem("messages", t.messages());
                    ChatRecord record = null;
                    if (problem == null) {
                        try {
                            record = RecordParser.chat(t.messages());
                        } catch (RecordParser.BadRecordException e) {
                            problem = e.getMessage();
                        }
                    }
                    sink.accept(row, 0, location(g, r), record, problem);
                }
            }
        }
    }

    /**
     * Every preference record of the file, in row order, parsed like the JSONL preference forms
     * ({@link RecordParser#preference}); a bad row is an error naming the file, row group and row.
     */
    static void preferences(Path path, Consumer<PreferenceRecord> sink) {
        try (ParquetFile file = ParquetFile.open(path)) {
            TurnsColumn prompt = TurnsColumn.of(file, "prompt");
            TurnsColumn chosen = TurnsColumn.of(file, "chosen");
            TurnsColumn rejected = TurnsColumn.of(file, "rejected");
            if (chosen == null || rejected == null) {
                throw new InputException(path + ": expected columns chosen and rejected (lists of messages or strings), found "
                        + columns(file));
            }
            for (int g = 0; g < file.rowGroups(); g++) {
                for (TurnsColumn c : new TurnsColumn[] {prompt, chosen, rejected}) {
                    if (c != null) {
                        c.startRowGroup(g);
                    }
                }
                for (long r = 0; r < file.rows(g); r++) {
                    TurnsColumn.Turns p = prompt == null ? null : prompt.next(Message.USER);
                    TurnsColumn.Turns c = chosen.next(Message.ASSISTANT);
                    TurnsColumn.Turns j = rejected.next(Message.ASSISTANT);
                    String problem = firstProblem(p, "prompt", c, "chosen", j, "rejected");
                    if (problem == null) {
                        try {
                            sink.accept(RecordParser.preference(p == null ? null : p.messages(), c.messages(), j.messages()));
                            continue;
                        } catch (RecordParser.BadRecordException e) {
                            problem = e.getMessage();
                        }
                    }
                    throw new InputException(path + ": " + describe(location(g, r)) + ": expected " + problem);
                }
            }
        }
    }

    private static String firstProblem(Object... turnsAndNames) {
        for (int i = 0; i < turnsAndNames.length; i += 2) {
            TurnsColumn.Turns t = (TurnsColumn.Turns) turnsAndNames[i];
            if (t != null) {
                String problem = t.problem() != null ? t.problem() : rolesProblem((String) turnsAndNames[i + 1], t.messages());
                if (problem != null) {
                    return problem;
                }
            }
        }
        return null;
    }

    private static String rolesProblem(String field, List<Message> messages) {
        for (int i = 0; i < messages.size(); i++) {
            String problem = RecordParser.roleProblem(field, i, messages.get(i).role());
            if (problem != null) {
                return problem;
            }
        }
        return null;
    }

    private static String columns(ParquetFile file) {
        List<String> names = new ArrayList<>();
        file.root().children.forEach(c -> names.add(c.name));
        return names.isEmpty() ? "no columns" : "the columns " + names;
    }
}
