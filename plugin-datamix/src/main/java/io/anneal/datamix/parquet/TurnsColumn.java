package io.anneal.datamix.parquet;

import io.anneal.api.InputException;
import io.anneal.api.data.Message;
import java.util.ArrayList;
import java.util.List;
import org.apache.parquet.format.FieldRepetitionType;
import org.apache.parquet.format.Type;

/**
 * A top-level column of chat turns, read row by row: either a list of {@code struct{role,
 * content}} (the JSONL messages form; the LIST layouts of the Parquet format's LogicalTypes.md: the
 * standard three levels, the two-level form where the repeated group is the element, or a bare
 * repeated group) or a string (a preference record's {@code prompt}/{@code chosen}/{@code rejected}
 * text form, one turn of a role the caller names). Records are assembled from the leaves'
 * repetition and definition levels (Dremel record assembly): repetition 0 starts a row, the list's
 * repetition level starts a new element, and the definition level says which node is null.
 */
public final class TurnsColumn {
    /** One row's turns, or what was wrong with it. */
    public record Turns(List<Message> messages, String problem) {
    }

    private final ParquetFile file;
    private final String name;
    private final ParquetFile.Node field;
    /** The list form: its role and content leaves and the levels that define each node on the way down. */
    private final ParquetFile.Node role;
    private final ParquetFile.Node content;
    private final int listPresent;
    private final int listNonEmpty;
    private final int elementPresent;
    private final int elementRepetition;
    private ColumnCursor roles;
    private ColumnCursor contents;

    private TurnsColumn(ParquetFile file, String name, ParquetFile.Node field, ParquetFile.Node element, ParquetFile.Node repeated) {
        this.file = file;
        this.name = name;
        this.field = field;
        if (element == null) {
            role = null;
            content = null;
            listPresent = listNonEmpty = elementPresent = elementRepetition = 0;
            return;
        }
        this.role = element.child("role");
        this.content = element.child("content");
        this.listPresent = field.repetition == FieldRepetitionType.REPEATED ? 0 : field.maxDefinition;
        this.listNonEmpty = repeated.maxDefinition;
        this.elementPresent = element.maxDefinition;
        this.elementRepetition = repeated.maxRepetition;
    }

    /** The column {@code name} of the file; null when the file has none. A column of another shape is an error naming it. */
    public static TurnsColumn of(ParquetFile file, String name) {
        ParquetFile.Node field = file.root().child(name);
        if (field == null) {
            return null;
        }
        if (!field.isGroup()) {
            if (field.type != Type.BYTE_ARRAY || field.repetition == FieldRepetitionType.REPEATED) {
                throw shape(file, name, field);
            }
            return new TurnsColumn(file, name, field, null, null);
        }
        ParquetFile.Node repeated;
        ParquetFile.Node element;
        if (field.repetition == FieldRepetitionType.REPEATED) {
            repeated = field; // a bare repeated group of {role, content}
            element = field;
        } else {
            if (field.children.size() != 1 || field.children.get(0).repetition != FieldRepetitionType.REPEATED) {
                throw shape(file, name, field);
            }
            repeated = field.children.get(0);
            // Three levels (list > element) unless the repeated group is itself the struct (two-level lists).
            element = repeated.isGroup() && repeated.child("role") == null && repeated.children.size() == 1
                    ? repeated.children.get(0) : repeated;
        }
        if (!element.isGroup() || element.repetition == FieldRepetitionType.REPEATED && element != repeated) {
            throw shape(file, name, field);
        }
        for (String leaf : new String[] {"role", "content"}) {
            ParquetFile.Node n = element.child(leaf);
            if (n == null || n.isGroup() || n.type != Type.BYTE_ARRAY || n.repetition == FieldRepetitionType.REPEATED) {
                throw shape(file, name, field);
            }
        }
        return new TurnsColumn(file, name, field, element, repeated);
    }

    private static InputException shape(ParquetFile file, String name, ParquetFile.Node field) {
        return new InputException(file.path + ": column " + name + ": expected a list of struct{role: string, content: string}"
                + " or a string, found " + field.describe());
    }

    /** True for the list-of-messages form, false for a string column. */
    public boolean isList() {
        return role != null;
    }

    /** Starts reading row group {@code g} from its first row. */
    public void startRowGroup(int g) {
        if (role == null) {
            roles = file.column(g, field);
            contents = null;
        } else {
            roles = file.column(g, role);
            contents = file.column(g, content);
        }
    }

    /** The next row's turns; a string column gives one turn of {@code textRole}. */
    public Turns next(String textRole) {
        if (!roles.next() || contents != null && !contents.next()) {
            throw new InputException(file.path + ": column " + name + " has fewer entries than its row group has rows (a damaged file)");
        }
        if (roles.rep != 0 || contents != null && contents.rep != 0) {
            throw new InputException(file.path + ": column " + name + ": a row does not start at repetition level 0 (a damaged file)");
        }
        if (contents == null) {
            return roles.value == null ? new Turns(null, "\"" + name + "\" to be a string or a list of messages, found null")
                    : new Turns(List.of(new Message(textRole, roles.value)), null);
        }
        if (roles.def < listPresent) {
            return new Turns(null, "\"" + name + "\" to be a list of {\"role\", \"content\"} objects, found null");
        }
        if (roles.def < listNonEmpty) {
            return new Turns(List.of(), null);
        }
        List<Message> out = new ArrayList<>();
        String problem = null;
        for (int index = 0; ; index++) {
            if (roles.def != contents.def && (roles.def < elementPresent || contents.def < elementPresent)) {
                throw new InputException(file.path + ": column " + name + ": role and content disagree on element " + index
                        + " (a damaged file)");
            }
            if (problem == null) {
                if (roles.def < elementPresent) {
                    problem = "\"" + name + "\"[" + index + "] to be an object {\"role\", \"content\"}, found null";
                } else if (roles.value == null || contents.value == null) {
                    problem = "\"" + name + "\"[" + index + "]." + (roles.value == null ? "role" : "content") + " to be a string, found null";
                } else {
                    out.add(new Message(roles.value, contents.value));
                }
            }
            // Every entry of the row is consumed, even after a problem, so the next row starts aligned.
            int nextRole = roles.peekRepetition();
            int nextContent = contents.peekRepetition();
            if (nextRole != nextContent) {
                throw new InputException(file.path + ": column " + name + ": role and content have different list lengths (a damaged file)");
            }
            if (nextRole != elementRepetition) {
                break;
            }
            roles.next();
            contents.next();
        }
        return problem == null ? new Turns(out, null) : new Turns(null, problem);
    }
}
