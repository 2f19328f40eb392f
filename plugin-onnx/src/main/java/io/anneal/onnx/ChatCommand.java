package io.anneal.onnx;

import io.anneal.api.InputException;
import io.anneal.api.cli.CliCommand;
import io.anneal.toolkit.cli.CommandArguments;
import io.anneal.api.cli.CommandContext;
import io.anneal.api.data.Message;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * {@code anneal chat --checkpoint DIR}: an interactive loop. Each line read is the user's turn;
 * the whole conversation goes through the chat template and the answer is streamed. {@code /reset}
 * forgets the conversation, {@code /exit} or the end of input ends it.
 */
final class ChatCommand implements CliCommand {
    static final String USAGE = "usage: anneal chat --checkpoint DIR [--system TEXT] [--max-new-tokens N] [--temperature T]"
            + " [--top-p P] [--seed S] [--provider cpu|cuda] [--threads N]";

    @Override
    public String name() {
        return "chat";
    }

    @Override
    public String summary() {
        return "an interactive chat with a checkpoint through ONNX Runtime (/reset, /exit)";
    }

    @Override
    public int run(List<String> args, CommandContext context) throws IOException {
        CommandArguments a = CommandArguments.parse("anneal chat", USAGE, args, Set.of(GenerationSetup.OPTIONS), Set.of());
        if (a.help()) {
            context.out().println(USAGE);
            context.out().println(GenerationSetup.OPTIONS_HELP);
            context.out().println("  Type a message and Enter; /reset forgets the conversation; /exit or Ctrl-D ends.");
            return 0;
        }
        a.noPositionals();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (GenerationSetup setup = GenerationSetup.open(a, context)) {
            context.out().println("chat: /reset forgets the conversation, /exit or Ctrl-D ends it");
            List<Message> history = new ArrayList<>();
            while (true) {
                context.out().print("> ");
                context.out().flush();
                String line = in.readLine();
                if (line == null || line.strip().equals("/exit")) {
                    context.out().println();
                    return 0;
                }
                if (line.isBlank()) {
                    continue;
                }
                if (line.strip().equals("/reset")) {
                    history.clear();
                    context.out().println("(conversation forgotten)");
                    continue;
                }
                List<Message> messages = new ArrayList<>();
                if (setup.system != null) {
                    messages.add(new Message(Message.SYSTEM, setup.system));
                }
                messages.addAll(history);
                messages.add(new Message(Message.USER, line));
                long[] ids = setup.tokenizer.encodePrompt(messages);
                try {
                    setup.checkFits(ids);
                } catch (InputException e) {
                    context.out().println("(" + e.getMessage() + "; /reset starts afresh)");
                    continue;
                }
                GenerateCommand.TextStream stream = new GenerateCommand.TextStream(setup.tokenizer, context.out());
                Generator.Output out = setup.generator.generate(ids, setup.maxNew, setup.tokenizer.endOfTurn(),
                        setup.sampling, false, stream::add);
                String answer = stream.finish();
                if (out.stop() != Generator.Stop.END_OF_TURN) {
                    context.out().println("(stopped at " + out.stop().text + ")");
                }
                history.add(new Message(Message.USER, line));
                history.add(new Message(Message.ASSISTANT, answer));
            }
        }
    }
}
