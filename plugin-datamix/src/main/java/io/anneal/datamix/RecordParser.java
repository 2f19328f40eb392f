package io.anneal.datamix;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import io.anneal.toolkit.chat.ChatRecord;
import io.anneal.api.data.Message;
import io.anneal.toolkit.chat.PreferenceRecord;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Parses one JSONL line into a chat record ({@code {"messages": [...]}}, the Tulu 3 form) or a
 * preference record (both forms), with jackson's streaming parser: no object tree per line.
 * Fields other than those named are skipped (Tulu 3 carries {@code id} and {@code source}).
 */
final class RecordParser {
    /** A tool's answer (TRL's and the Hugging Face templates' role for function results). */
    static final String TOOL = "tool";
    static final Set<String> ROLES = Set.of(Message.SYSTEM, Message.USER, Message.ASSISTANT, TOOL);
    private static final JsonFactory JSON = new JsonFactory();

    /** A record that cannot be used, with what was expected and found (without the file and line). */
    static final class BadRecordException extends Exception {
        private static final long serialVersionUID = 1L;

        BadRecordException(String message) {
            super(message);
        }
    }

    ChatRecord parseChat(byte[] buf, int offset, int length) throws BadRecordException {
        List<Message> messages = null;
        try (JsonParser p = JSON.createParser(buf, offset, length)) {
            expectObjectStart(p);
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                if ("messages".equals(field)) {
                    messages = messageList(p, "messages");
                } else {
                    p.skipChildren();
                }
            }
        } catch (JsonParseException e) {
            throw malformed(e);
        } catch (IOException e) {
            throw new BadRecordException("a JSON object, found unreadable input: " + e.getMessage());
        }
        if (messages == null) {
            throw new BadRecordException("a field \"messages\" (a list of {\"role\", \"content\"} objects), found none");
        }
        return chat(messages);
    }

    /** The chat record of a parsed {@code messages} list (JSONL or Parquet): it must hold a message. */
    static ChatRecord chat(List<Message> messages) throws BadRecordException {
        if (messages.isEmpty()) {
            throw new BadRecordException("at least one message in \"messages\", found an empty list");
        }
        return new ChatRecord(messages);
    }

    /** What is wrong with a role, or null when it is one of the template's. */
    static String roleProblem(String field, int index, String role) {
        return ROLES.contains(role) ? null
                : "\"" + field + "\"[" + index + "].role to be one of assistant, system, tool, user, found '" + role + "'";
    }

    /**
     * Reads either preference form. In the {@code chosen}/{@code rejected} form the leading turns
     * both share become the prompt; a string {@code prompt} is one user turn, and a string
     * {@code chosen} or {@code rejected} one assistant turn (TRL's conventions).
     */
    PreferenceRecord parsePreference(byte[] buf, int offset, int length) throws BadRecordException {
        List<Message> prompt = null;
        List<Message> chosen = null;
        List<Message> rejected = null;
        try (JsonParser p = JSON.createParser(buf, offset, length)) {
            expectObjectStart(p);
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                switch (field) {
                    case "prompt" -> prompt = turnsOrText(p, "prompt", Message.USER);
                    case "chosen" -> chosen = turnsOrText(p, "chosen", Message.ASSISTANT);
                    case "rejected" -> rejected = turnsOrText(p, "rejected", Message.ASSISTANT);
                    default -> p.skipChildren();
                }
            }
        } catch (JsonParseException e) {
            throw malformed(e);
        } catch (IOException e) {
            throw new BadRecordException("a JSON object, found unreadable input: " + e.getMessage());
        }
        return preference(prompt, chosen, rejected);
    }

    /**
     * A preference record from its parsed fields (JSONL or Parquet); {@code prompt} null is the
     * {@code chosen}/{@code rejected} form, whose shared leading turns become the prompt.
     */
    static PreferenceRecord preference(List<Message> prompt, List<Message> chosen, List<Message> rejected) throws BadRecordException {
        if (chosen == null || rejected == null) {
            throw new BadRecordException("fields \"chosen\" and \"rejected\", found "
                    + (chosen == null && rejected == null ? "neither" : chosen == null ? "no \"chosen\"" : "no \"rejected\""));
        }
        if (prompt == null) {
            int shared = 0;
            while (shared < chosen.size() - 1 && shared < rejected.size() - 1 && chosen.get(shared).equals(rejected.get(shared))) {
                shared++;
            }
            prompt = chosen.subList(0, shared);
            chosen = chosen.subList(shared, chosen.size());
            rejected = rejected.subList(shared, rejected.size());
        }
        if (chosen.isEmpty() || rejected.isEmpty()) {
            throw new BadRecordException("non-empty \"chosen\" and \"rejected\" answers, found an empty one");
        }
        return new PreferenceRecord(prompt, chosen, rejected);
    }

    private static void expectObjectStart(JsonParser p) throws IOException, BadRecordException {
        JsonToken t = p.nextToken();
        if (t != JsonToken.START_OBJECT) {
            throw new BadRecordException("a JSON object, found " + describe(t));
        }
    }

    private static List<Message> turnsOrText(JsonParser p, String field, String textRole) throws IOException, BadRecordException {
        if (p.currentToken() == JsonToken.VALUE_STRING) {
            return List.of(new Message(textRole, p.getText()));
        }
        return messageList(p, field);
    }

    private static List<Message> messageList(JsonParser p, String field) throws IOException, BadRecordException {
        if (p.currentToken() != JsonToken.START_ARRAY) {
            throw new BadRecordException("\"" + field + "\" to be a list of messages, found " + describe(p.currentToken()));
        }
        List<Message> out = new ArrayList<>();
        while (p.nextToken() != JsonToken.END_ARRAY) {
            int index = out.size();
            if (p.currentToken() != JsonToken.START_OBJECT) {
                throw new BadRecordException("\"" + field + "\"[" + index + "] to be an object {\"role\", \"content\"}, found "
                        + describe(p.currentToken()));
            }
            String role = null;
            String content = null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken v = p.nextToken();
                if ("role".equals(name) || "content".equals(name)) {
                    if (v != JsonToken.VALUE_STRING) {
                        throw new BadRecordException("\"" + field + "\"[" + index + "]." + name + " to be a string, found " + describe(v));
                    }
                    if ("role".equals(name)) {
                        role = p.getText();
                    } else {
                        content = p.getText();
                    }
                } else {
                    p.skipChildren();
                }
            }
            if (role == null || content == null) {
                throw new BadRecordException("\"" + field + "\"[" + index + "] to have \"role\" and \"content\", found no \""
                        + (role == null ? "role" : "content") + "\"");
            }
            String wrongRole = roleProblem(field, index, role);
            if (wrongRole != null) {
                throw new BadRecordException(wrongRole);
            }
            out.add(new Message(role, content));
        }
        return out;
    }

    private static BadRecordException malformed(JsonParseException e) {
        String detail = e.getOriginalMessage();
        int cut = detail.indexOf('\n');
        return new BadRecordException("well-formed JSON, found a syntax error at column "
                + (e.getLocation() == null ? "?" : e.getLocation().getColumnNr()) + ": " + (cut < 0 ? detail : detail.substring(0, cut)));
    }

    private static String describe(JsonToken t) {
        if (t == null) {
            return "end of line";
        }
        return switch (t) {
            case START_ARRAY -> "a list";
            case START_OBJECT -> "an object";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            default -> t.toString();
        };
    }
}
