package io.anneal.onnx;

import io.anneal.api.cli.CliCommand;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.data.Message;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code anneal generate --checkpoint DIR --prompt TEXT [...]}: one answer, streamed as it is
 * written, from the chat template's rendering of the prompt, through ONNX Runtime.
 */
final class GenerateCommand implements CliCommand {
    static final String USAGE = "usage: anneal generate --checkpoint DIR --prompt TEXT [--system TEXT] [--max-new-tokens N]"
            + " [--temperature T] [--top-p P] [--seed S] [--provider cpu|cuda] [--threads N] [--json FILE] [--recompute]";

    @Override
    public String name() {
        return "generate";
    }

    @Override
    public String summary() {
        return "one answer to a prompt with ONNX Runtime (chat template, KV/conv/SSM caches, greedy or top-p sampling)";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws IOException {
        List<String> options = new ArrayList<>(Arrays.asList(GenerationSetup.OPTIONS));
        options.addAll(List.of("prompt", "json"));
        CommandArguments a = CommandArguments.parse("anneal generate", USAGE, args, Set.copyOf(options), Set.of("recompute"));
        if (a.help()) {
            context.out().println(USAGE);
            context.out().println("  --prompt TEXT         the user's message");
            context.out().println(GenerationSetup.OPTIONS_HELP);
            context.out().println("  --json FILE           also write the prompt's and the answer's ids, the text and the rates");
            context.out().println("  --recompute           run the whole sequence through the prefill graph at every token instead");
            context.out().println("                        of carrying the caches (slow; the reference the caches are tested against)");
            return 0;
        }
        a.noPositionals();
        String prompt = a.required("prompt");
        try (GenerationSetup setup = GenerationSetup.open(a, context)) {
            List<Message> messages = new ArrayList<>();
            if (setup.system != null) {
                messages.add(new Message(Message.SYSTEM, setup.system));
            }
            messages.add(new Message(Message.USER, prompt));
            long[] ids = setup.tokenizer.encodePrompt(messages);
            setup.checkFits(ids);
            TextStream stream = new TextStream(setup.tokenizer, context.out());
            Generator.Output out = setup.generator.generate(ids, setup.maxNew, setup.tokenizer.endOfTurn(), setup.sampling,
                    a.isSet("recompute"), stream::add);
            stream.finish();
            context.out().printf("generated %d tokens (stopped at %s); prefill %d tokens at %.1f tokens/s, decode %.1f"
                    + " tokens/s%s%n", out.ids().length, out.stop().text, ids.length, out.prefillTokensPerSecond(ids.length),
                    out.decodeTokensPerSecond(), a.isSet("recompute") ? " (recomputed, no caches)" : "");
            if (a.has("json")) {
                Path file = context.workingDirectory().resolve(a.required("json"));
                Map<String, Object> json = new LinkedHashMap<>();
                json.put("prompt_ids", ids);
                json.put("ids", out.ids());
                json.put("text", setup.tokenizer.decode(out.ids()));
                json.put("stop", out.stop().name().toLowerCase());
                json.put("prefill_tokens_per_second", out.prefillTokensPerSecond(ids.length));
                json.put("decode_tokens_per_second", out.decodeTokensPerSecond());
                json.put("cached", !a.isSet("recompute"));
                Path parent = file.toAbsolutePath().getParent();
                Files.createDirectories(parent);
                ExportedFolder.JSON.writeValue(file.toFile(), json);
            }
        }
        return 0;
    }

    /** Prints the answer as it grows: the decoded text of all ids so far, less what is already printed. */
    static final class TextStream {
        private final io.anneal.api.data.ChatTokenizer tokenizer;
        private final java.io.PrintStream out;
        private final List<Long> ids = new ArrayList<>();
        private String printed = "";

        TextStream(io.anneal.api.data.ChatTokenizer tokenizer, java.io.PrintStream out) {
            this.tokenizer = tokenizer;
            this.out = out;
        }

        void add(long id) {
            ids.add(id);
            String text = tokenizer.decode(ids.stream().mapToLong(Long::longValue).toArray());
            // a multi-byte character split over tokens decodes to U+FFFD until its last byte comes
            if (text.startsWith(printed) && !text.endsWith("\uFFFD")) {
                out.print(text.substring(printed.length()));
                out.flush();
                printed = text;
            }
        }

        String finish() {
            String text = tokenizer.decode(ids.stream().mapToLong(Long::longValue).toArray());
            if (text.startsWith(printed)) {
                out.print(text.substring(printed.length()));
            }
            out.println();
            return text;
        }
    }
}
