package io.anneal.datamix;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.MacroFunction;
import com.hubspot.jinjava.lib.tag.Tag;
import com.hubspot.jinjava.tree.Node;
import com.hubspot.jinjava.tree.TagNode;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import jinjava.javax.el.CompositeELResolver;
import jinjava.javax.el.ELContext;

/**
 * Jinjava made to render Hugging Face chat templates as transformers' jinja2 environment does
 * ({@code _compile_jinja_template}): trim_blocks and lstrip_blocks on, and what Jinjava lacks or
 * does differently from jinja2:
 * <ul>
 *   <li>{@code raise_exception(message)} fails the render with the message;
 *   <li>{@code tojson} is Python's {@code json.dumps} (ensure_ascii off, indent, separators,
 *       sort_keys), not Jackson's compact form;
 *   <li>Python string methods ({@code .startswith()}, {@code .endswith()}, {@code .strip()},
 *       {@code .lstrip()}, {@code .rstrip()}, {@code .split()}, {@code .upper()}, {@code .lower()},
 *       {@code .replace()}) on strings;
 *   <li>{@code {% generation %}...{% endgeneration %}} marks its output with two noncharacters,
 *       which the template strips into assistant spans.
 * </ul>
 * {@code loop.last}, {@code namespace()}, slices and negative indexes are Jinjava's own.
 */
final class PythonJinja {
    static final int GENERATION_START = 0xFDD0;
    static final int GENERATION_END = 0xFDD1;
    /** The message of the last raise_exception on this thread (Jinjava turns the exception into a generic error). */
    static final ThreadLocal<String> RAISED = new ThreadLocal<>();

    private PythonJinja() {}

    static Jinjava environment() {
        return withPluginLoader(PythonJinja::build);
    }

    /**
     * Runs {@code work} with this plugin's class loader as the thread's context loader: Jinjava's EL
     * (JUEL) loads its classes by name through it, and in a plugin layer the application's loader
     * does not see them.
     */
    static <T> T withPluginLoader(java.util.function.Supplier<T> work) {
        Thread thread = Thread.currentThread();
        ClassLoader previous = thread.getContextClassLoader();
        thread.setContextClassLoader(PythonJinja.class.getClassLoader());
        try {
            return work.get();
        } finally {
            thread.setContextClassLoader(previous);
        }
    }

    private static Jinjava build() {
        JinjavaConfig config = JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withElResolver(new PythonStringMethods())
                .withLegacyOverrides(LegacyOverrides.newBuilder() // jinja2's behaviour where Jinjava kept its own
                        .withUseTrimmingForNotesAndExpressions(true) // {{- x -}} and {#- -#} trim, not only {%- -%}
                        .withUseNaturalOperatorPrecedence(true) // '\n' + x | tojson filters x, not the sum
                        .withParseWhitespaceControlStrictly(true)
                        .withEvaluateMapKeys(true)
                        .withIterateOverMapKeys(true)
                        .withKeepNullableLoopValues(true)
                        .withHandleBackslashInQuotesOnly(true)
                        .withAllowAdjacentTextNodes(true)
                        .build())
                .build();
        Jinjava jinjava = new Jinjava(config);
        jinjava.getGlobalContext().registerFilter(new ToJson());
        jinjava.getGlobalContext().registerTag(new Generation());
        jinjava.getGlobalContext().addGlobalMacro(new RaiseException());
        return jinjava;
    }

    /** {@code raise_exception(message)}: a global macro, so no reflective access to this module is needed. */
    private static final class RaiseException extends MacroFunction {
        RaiseException() {
            super(List.of(), "raise_exception", arguments(), false, null, 0, 0);
        }

        private static LinkedHashMap<String, Object> arguments() {
            LinkedHashMap<String, Object> args = new LinkedHashMap<>();
            args.put("message", null);
            return args;
        }

        @Override
        public Object doEvaluate(Map<String, Object> argMap, Map<String, Object> kwargMap, List<Object> varArgs) {
            String message = String.valueOf(argMap.get("message"));
            if (RAISED.get() == null) { // Jinjava renders on after an error: the first one is the template's answer
                RAISED.set(message);
            }
            throw new IllegalStateException("raise_exception: " + message);
        }
    }

    /** {@code {% generation %}}: the body's output between the two markers. */
    private static final class Generation implements Tag {
        private static final long serialVersionUID = 1L;

        @Override
        public String getName() {
            return "generation";
        }

        @Override
        public String getEndTagName() {
            return "endgeneration";
        }

        @Override
        public String interpret(TagNode tagNode, JinjavaInterpreter interpreter) {
            StringBuilder out = new StringBuilder().appendCodePoint(GENERATION_START);
            try (var scope = interpreter.enterScope()) {
                for (Node child : tagNode.getChildren()) {
                    out.append(child.render(interpreter).getValue());
                }
            }
            return out.appendCodePoint(GENERATION_END).toString();
        }
    }

    /** Python's string methods on Java strings, ahead of Jinjava's own resolvers. */
    private static final class PythonStringMethods extends CompositeELResolver {
        PythonStringMethods() {
            add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        }

        @Override
        public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
            if (base instanceof String s && method instanceof String name) {
                Object[] p = params == null ? new Object[0] : params;
                Object result = call(s, name, p);
                if (result != null) {
                    context.setPropertyResolved(true);
                    return result;
                }
            }
            return super.invoke(context, base, method, paramTypes, params);
        }

        private static Object call(String s, String name, Object[] p) {
            String a0 = p.length > 0 && p[0] != null ? p[0].toString() : null;
            return switch (name) {
                case "startswith" -> p.length == 1 ? (Object) affix(s, p[0], true) : null;
                case "endswith" -> p.length == 1 ? (Object) affix(s, p[0], false) : null;
                case "strip" -> strip(strip(s, a0, true), a0, false);
                case "lstrip" -> strip(s, a0, true);
                case "rstrip" -> strip(s, a0, false);
                case "upper" -> p.length == 0 ? s.toUpperCase(java.util.Locale.ROOT) : null;
                case "lower" -> p.length == 0 ? s.toLowerCase(java.util.Locale.ROOT) : null;
                case "replace" -> p.length == 2 ? s.replace(a0, String.valueOf(p[1])) : null;
                case "split" -> split(s, a0, p.length > 1 && p[1] instanceof Number n ? n.intValue() : -1);
                default -> null;
            };
        }

        private static boolean affix(String s, Object arg, boolean prefix) {
            if (arg instanceof Collection<?> options) { // Python takes a tuple of affixes
                for (Object o : options) {
                    if (affix(s, o, prefix)) {
                        return true;
                    }
                }
                return false;
            }
            String a = String.valueOf(arg);
            return prefix ? s.startsWith(a) : s.endsWith(a);
        }

        private static boolean stripped(int c, String chars) {
            return chars == null ? Character.isWhitespace(c) || Character.isSpaceChar(c) || c == 0x85 : chars.indexOf(c) >= 0;
        }

        private static String strip(String s, String chars, boolean left) {
            int from = 0;
            int to = s.length();
            if (left) {
                while (from < to && stripped(s.codePointAt(from), chars)) {
                    from += Character.charCount(s.codePointAt(from));
                }
            } else {
                while (to > from && stripped(s.codePointBefore(to), chars)) {
                    to -= Character.charCount(s.codePointBefore(to));
                }
            }
            return s.substring(from, to);
        }

        private static List<String> split(String s, String sep, int maxSplit) {
            List<String> out = new ArrayList<>();
            if (sep == null) { // runs of whitespace, no empty strings
                int i = 0;
                while (i < s.length()) {
                    while (i < s.length() && stripped(s.charAt(i), null)) {
                        i++;
                    }
                    if (i == s.length()) {
                        break;
                    }
                    int j = i;
                    if (maxSplit >= 0 && out.size() == maxSplit) {
                        out.add(strip(s.substring(i), null, false));
                        return out;
                    }
                    while (j < s.length() && !stripped(s.charAt(j), null)) {
                        j++;
                    }
                    out.add(s.substring(i, j));
                    i = j;
                }
                return out;
            }
            int from = 0;
            int at;
            while ((maxSplit < 0 || out.size() < maxSplit) && (at = s.indexOf(sep, from)) >= 0) {
                out.add(s.substring(from, at));
                from = at + sep.length();
            }
            out.add(s.substring(from));
            return out;
        }
    }

    /** transformers' tojson: {@code json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)}. */
    private static final class ToJson implements Filter {
        @Override
        public String getName() {
            return "tojson";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return filter(var, interpreter, args, Map.of());
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object indent = kwargs.containsKey("indent") ? kwargs.get("indent") : args.length > 1 ? args[1] : null;
            String itemSep = indent == null ? ", " : ",";
            String keySep = ": ";
            if (kwargs.get("separators") instanceof List<?> seps && seps.size() == 2) {
                itemSep = String.valueOf(seps.get(0));
                keySep = String.valueOf(seps.get(1));
            }
            String pad = indent == null ? null : indent instanceof Number n ? " ".repeat(n.intValue()) : indent.toString();
            StringBuilder out = new StringBuilder();
            write(out, var, Boolean.TRUE.equals(kwargs.get("ensure_ascii")), pad, itemSep, keySep,
                    Boolean.TRUE.equals(kwargs.get("sort_keys")), 0);
            return out.toString();
        }

        private static void write(StringBuilder out, Object v, boolean ascii, String pad, String itemSep, String keySep,
                                  boolean sort, int depth) {
            if (v == null) {
                out.append("null");
            } else if (v instanceof Boolean b) {
                out.append(b ? "true" : "false");
            } else if (v instanceof Double || v instanceof Float) {
                out.append(pythonFloat(((Number) v).doubleValue()));
            } else if (v instanceof Number n) {
                out.append(n);
            } else if (v instanceof Map<?, ?> map) {
                Map<?, ?> m = sort ? new TreeMap<>(map) : map;
                if (m.isEmpty()) {
                    out.append("{}");
                    return;
                }
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    separate(out, first, pad, itemSep, depth + 1);
                    first = false;
                    string(out, String.valueOf(e.getKey()), ascii);
                    out.append(keySep);
                    write(out, e.getValue(), ascii, pad, itemSep, keySep, sort, depth + 1);
                }
                close(out, pad, depth).append('}');
            } else if (v instanceof Collection<?> || v instanceof Object[]) {
                Collection<?> c = v instanceof Object[] arr ? List.of(arr) : (Collection<?>) v;
                if (c.isEmpty()) {
                    out.append("[]");
                    return;
                }
                out.append('[');
                boolean first = true;
                for (Object o : c) {
                    separate(out, first, pad, itemSep, depth + 1);
                    first = false;
                    write(out, o, ascii, pad, itemSep, keySep, sort, depth + 1);
                }
                close(out, pad, depth).append(']');
            } else {
                string(out, v.toString(), ascii);
            }
        }

        private static void separate(StringBuilder out, boolean first, String pad, String itemSep, int depth) {
            if (!first) {
                out.append(itemSep);
            }
            if (pad != null) {
                out.append('\n').append(pad.repeat(depth));
            }
        }

        private static StringBuilder close(StringBuilder out, String pad, int depth) {
            return pad == null ? out : out.append('\n').append(pad.repeat(depth));
        }

        private static String pythonFloat(double d) {
            if (Double.isNaN(d)) {
                return "NaN";
            }
            if (Double.isInfinite(d)) {
                return d > 0 ? "Infinity" : "-Infinity";
            }
            String s = Double.toString(d); // shortest round-trip digits, as Python's repr
            int e = s.indexOf('E');
            if (e < 0) {
                return s;
            }
            int exp = Integer.parseInt(s.substring(e + 1));
            if (exp >= -4 && exp < 16) {
                return new java.math.BigDecimal(s).toPlainString() + (s.substring(0, e).contains(".") && exp >= 0
                        && new java.math.BigDecimal(s).stripTrailingZeros().scale() <= 0 ? ".0" : "");
            }
            String mantissa = s.substring(0, e).endsWith(".0") ? s.substring(0, e - 2) : s.substring(0, e);
            return mantissa + "e" + (exp < 0 ? "-" : "+") + String.format("%02d", Math.abs(exp));
        }

        private static void string(StringBuilder out, String s, boolean ascii) {
            out.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> out.append("\\\"");
                    case '\\' -> out.append("\\\\");
                    case '\n' -> out.append("\\n");
                    case '\r' -> out.append("\\r");
                    case '\t' -> out.append("\\t");
                    case '\b' -> out.append("\\b");
                    case '\f' -> out.append("\\f");
                    default -> {
                        if (c < 0x20 || (ascii && c > 0x7f)) {
                            out.append(String.format("\\u%04x", (int) c));
                        } else {
                            out.append(c);
                        }
                    }
                }
            }
            out.append('"');
        }
    }
}
