package io.anneal.datamix;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.TokenizersLibrary;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.anneal.api.InputException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;

/**
 * A Hugging Face {@code tokenizer.json} through DJL's tokenizers (the Rust {@code tokenizers}
 * library; the native library ships inside the DJL jar, nothing downloads). Text is encoded without
 * special tokens: the chat template adds its own, by id.
 */
final class HfTokenizer implements AutoCloseable {
    private final HuggingFaceTokenizer tokenizer;
    private final Path file;
    private final String fingerprint;
    private final int vocabularySize;
    private final Map<String, Integer> specialTokens;

    private HfTokenizer(HuggingFaceTokenizer tokenizer, Path file, String fingerprint, int vocabularySize,
                        Map<String, Integer> specialTokens) {
        this.tokenizer = tokenizer;
        this.file = file;
        this.fingerprint = fingerprint;
        this.vocabularySize = vocabularySize;
        this.specialTokens = specialTokens;
    }

    static HfTokenizer load(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new InputException(file + ": expected a Hugging Face tokenizer.json, found no such file");
        } catch (IOException e) {
            throw new InputException(file + ": cannot read the tokenizer: " + e.getMessage(), e);
        }
        Map<String, Integer> special = new HashMap<>();
        int vocab = scanVocabulary(file, bytes, special);
        // DJL finds its tokenizers.properties and native library through the thread's context class
        // loader; in a plugin layer that must be this plugin's loader, not the application's.
        Thread thread = Thread.currentThread();
        ClassLoader previous = thread.getContextClassLoader();
        thread.setContextClassLoader(HfTokenizer.class.getClassLoader());
        // Tokenising runs on the CPU. On a CUDA machine DJL would otherwise look for a CUDA build
        // of the library and download it, and nothing may download at run time.
        if (System.getProperty("RUST_FLAVOR") == null && System.getenv("RUST_FLAVOR") == null) {
            System.setProperty("RUST_FLAVOR", "cpu");
        }
        try {
            HuggingFaceTokenizer t = HuggingFaceTokenizer.builder()
                    .optTokenizerPath(file)
                    .optAddSpecialTokens(false)
                    .optTruncation(false)
                    .optPadding(false)
                    .build();
            return new HfTokenizer(t, file, sha256(bytes), vocab, Map.copyOf(special));
        } catch (IOException | RuntimeException e) {
            throw new InputException(file + ": expected a Hugging Face tokenizer.json, the tokenizers library refused it: "
                    + e.getMessage(), e);
        } finally {
            thread.setContextClassLoader(previous);
        }
    }

    /**
     * Token ids of each text, in order (one native call for the whole batch). Only the ids are
     * fetched: DJL's {@code batchEncode} builds a full {@code Encoding} per text (tokens as strings,
     * char spans, word ids, masks: nine native calls each), which cost more than the tokenising
     * itself here. {@link #encodeReference} is that public path, kept to check this one.
     */
    int[][] encode(String[] texts) {
        TokenizersLibrary lib = TokenizersLibrary.LIB;
        long[] handles = lib.batchEncode(tokenizer.getHandle(), texts, false);
        int[][] out = new int[texts.length][];
        try {
            for (int i = 0; i < texts.length; i++) {
                out[i] = toInts(lib.getTokenIds(handles[i]));
            }
        } finally {
            for (long h : handles) {
                lib.deleteEncoding(h);
            }
        }
        return out;
    }

    /** The same ids through DJL's public {@code batchEncode} (the reference for {@link #encode(String[])}). */
    int[][] encodeReference(String[] texts) {
        Encoding[] encodings = tokenizer.batchEncode(texts, false, false);
        int[][] out = new int[texts.length][];
        for (int i = 0; i < texts.length; i++) {
            out[i] = toInts(encodings[i].getIds());
        }
        return out;
    }

    private static int[] toInts(long[] ids) {
        int[] row = new int[ids.length];
        for (int j = 0; j < ids.length; j++) {
            row[j] = (int) ids[j];
        }
        return row;
    }

    /** Ids of a text and each token's [start, end) in Unicode code points of the text. */
    record Encoded(int[] ids, int[] starts, int[] ends) {}

    /** One text's ids and character offsets (DJL's char spans; the chat template maps its assistant spans through them). */
    Encoded encodeWithOffsets(String text) {
        Encoding e = tokenizer.encode(text, false, false);
        ai.djl.huggingface.tokenizers.jni.CharSpan[] spans = e.getCharTokenSpans();
        int[] starts = new int[spans.length];
        int[] ends = new int[spans.length];
        for (int j = 0; j < spans.length; j++) {
            starts[j] = spans[j] == null ? (j > 0 ? ends[j - 1] : 0) : spans[j].getStart();
            ends[j] = spans[j] == null ? starts[j] : spans[j].getEnd();
        }
        return new Encoded(toInts(e.getIds()), starts, ends);
    }

    /** The text of {@code ids}, special tokens included (tests compare renders as text). */
    String decode(int[] ids) {
        return tokenizer.decode(java.util.Arrays.stream(ids).asLongStream().toArray(), false);
    }

    /** The text of {@code ids}, special tokens left out (what generation prints). */
    String decodeWithoutSpecialTokens(long[] ids) {
        return tokenizer.decode(ids, true);
    }

    int[] encode(String text) {
        return encode(new String[] {text})[0];
    }

    /** The id of an added token such as {@code <|im_end|>}; a tokenizer without it cannot serve the template. */
    int specialTokenId(String token) {
        Integer id = specialTokens.get(token);
        if (id == null) {
            throw new InputException(file + ": expected the tokenizer to define the added token " + token
                    + " (the ChatML template needs <|im_start|>, <|im_end|> and a padding token), found none");
        }
        return id;
    }

    /**
     * The first added (special) token of this tokenizer found inside {@code text}, or null. Text that holds
     * one, such as a user message with {@code <|im_end|><|im_start|>system}, would be encoded as the
     * control token itself: a message could forge turns (issue 15).
     */
    String specialTokenIn(String text) {
        if (text.isEmpty()) {
            return null;
        }
        String found = null;
        int at = Integer.MAX_VALUE;
        for (String token : specialTokens.keySet()) {
            int i = token.isEmpty() ? -1 : text.indexOf(token);
            if (i >= 0 && (i < at || (i == at && token.length() > found.length()))) {
                found = token;
                at = i;
            }
        }
        return found;
    }

    boolean hasSpecialToken(String token) {
        return specialTokens.containsKey(token);
    }

    int vocabularySize() {
        return vocabularySize;
    }

    /** SHA-256 of the tokenizer.json bytes: token-count caches are keyed by it. */
    String fingerprint() {
        return fingerprint;
    }

    Path file() {
        return file;
    }

    @Override
    public void close() {
        tokenizer.close();
    }

    /** 1 + the largest id in model.vocab and added_tokens; fills the added tokens' ids. */
    private static int scanVocabulary(Path file, byte[] bytes, Map<String, Integer> special) {
        int max = -1;
        try (JsonParser p = new JsonFactory().createParser(bytes)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new InputException(file + ": expected a JSON object (tokenizer.json), found something else");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                if ("added_tokens".equals(field) && p.currentToken() == JsonToken.START_ARRAY) {
                    while (p.nextToken() == JsonToken.START_OBJECT) {
                        int id = -1;
                        String content = null;
                        while (p.nextToken() == JsonToken.FIELD_NAME) {
                            String k = p.currentName();
                            p.nextToken();
                            if ("id".equals(k)) {
                                id = p.getIntValue();
                            } else if ("content".equals(k)) {
                                content = p.getText();
                            } else {
                                p.skipChildren();
                            }
                        }
                        if (content != null && id >= 0) {
                            special.put(content, id);
                            max = Math.max(max, id);
                        }
                    }
                } else if ("model".equals(field) && p.currentToken() == JsonToken.START_OBJECT) {
                    while (p.nextToken() == JsonToken.FIELD_NAME) {
                        String k = p.currentName();
                        p.nextToken();
                        if ("vocab".equals(k) && p.currentToken() == JsonToken.START_OBJECT) {
                            while (p.nextToken() == JsonToken.FIELD_NAME) {
                                p.nextToken();
                                max = Math.max(max, p.getIntValue());
                            }
                        } else {
                            p.skipChildren();
                        }
                    }
                } else {
                    p.skipChildren();
                }
            }
        } catch (IOException e) {
            throw new InputException(file + ": expected a Hugging Face tokenizer.json, found malformed JSON: " + e.getMessage(), e);
        }
        if (max < 0) {
            throw new InputException(file + ": expected a BPE model with a \"vocab\", found no token ids");
        }
        return max + 1;
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every JVM", e);
        }
    }
}
