package io.anneal.datamix;

import java.nio.file.Path;

/** Chat records of a Parquet file, row group by row group (in progress). */
final class ParquetChatRows {
    private ParquetChatRows() {
    }

    static void scan(Path file, SourceFile.RowSink sink) {
        throw new UnsupportedOperationException(file + ": Parquet is not read yet");
    }

    static String describe(long location) {
        return "row " + location;
    }
}
