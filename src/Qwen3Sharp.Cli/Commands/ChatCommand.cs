using System.Text;
using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Loading;
using Spectre.Console;

namespace Qwen3Sharp.Cli.Commands;

/// <summary>
/// <c>qwen3 chat</c>: an interactive terminal chat. Answers stream as they are written, reasoning dimmed (shown or
/// folded with /reasoning), /think and /no_think switch per turn, /clear forgets, /exit leaves; Ctrl+C stops the
/// current answer, not the program. History keeps answers without their reasoning, as the Qwen3 template does.
/// With standard input not a terminal, the whole input is one prompt and only the answer is printed.
/// </summary>
public static partial class ChatCommand
{
    private const string Help = "/think, /no_think: thinking on or off from now on · /reasoning: show or fold reasoning · /clear: new conversation · /exit";

    public static async Task<int> RunAsync(ChatOptions o, CancellationToken ct)
    {
        string directory = await ModelSource.ResolveAsync(o.Model, o.Context, ct);
        bool piped = Console.IsInputRedirected || !o.Context.IsConsole;
        using Qwen3Host host = Qwen3Host.Load(directory, new HostOptions
        {
            WarmUp = !piped && !o.NoWarmup,   // one piped prompt would wait longer for the warm-up than it saves
            // an interactive session decodes many answers: the copy (float matrices in 8-row groups on AVX2, 1.2-1.5x BF16
            // decode) pays back its ~2 s of load (1.7B); one piped prompt keeps the instant mapped load, as `run` does
            WeightPlacement = piped ? WeightPlacement.Mapped : WeightPlacement.Copy,
            MaxSequences = 1,
            MaxQueuedRequests = 1,
            ThreadCount = o.Threads ?? Environment.ProcessorCount,
            ContextSize = o.CtxSize,
            KvCacheDType = o.KvCacheDType,
            Quantize = o.Quantize,
        });
        var session = new Session(host.Chat, o.System, thinking: !o.NoThink);

        if (piped)
        {
            string prompt = (await Console.In.ReadToEndAsync(ct)).Trim();
            if (prompt.Length == 0)
            {
                await o.Context.Error.WriteLineAsync("error: no prompt on standard input");
                return Qwen3Cli.ExitError;
            }

            await session.AskAsync(prompt, text => o.Context.Out.Write(text), _ => { }, ct);
            await o.Context.Out.WriteLineAsync();
            return Qwen3Cli.ExitOk;
        }

        return await InteractiveAsync(session, Server.ServerOptions.ModelNameFromDirectory(directory), ct);
    }

    private static async Task<int> InteractiveAsync(Session session, string model, CancellationToken ct)
    {
        IAnsiConsole console = AnsiConsole.Console;
        console.MarkupLine($"[bold]qwen3 chat[/] · {Markup.Escape(model)} · thinking {(session.Thinking ? "on" : "off")}");
        console.MarkupLine($"[grey]{Markup.Escape(Help)}[/]");
        bool showReasoning = true;
        CancellationTokenSource? turn = null;
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (turn is { IsCancellationRequested: false })
            {
                e.Cancel = true;  // stop the answer, keep the program
                turn.Cancel();
            }
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                console.Markup("[bold green]> [/]");
                string? line = Console.ReadLine();
                if (line is null || line.Trim() == "/exit")
                {
                    return Qwen3Cli.ExitOk;
                }

                switch (line.Trim())
                {
                    case "":
                        continue;
                    case "/clear":
                        session.Clear();
                        console.MarkupLine("[grey](new conversation)[/]");
                        continue;
                    case "/reasoning":
                        showReasoning = !showReasoning;
                        console.MarkupLine($"[grey](reasoning {(showReasoning ? "shown" : "folded")})[/]");
                        continue;
                    case "/help":
                        console.MarkupLine($"[grey]{Markup.Escape(Help)}[/]");
                        continue;
                }

                turn = CancellationTokenSource.CreateLinkedTokenSource(ct);
                int reasoningChars = 0;
                try
                {
                    ChatFinishReason finish = await session.AskAsync(line,
                        text => console.Write(text),
                        text =>
                        {
                            if (reasoningChars == 0)
                            {
                                console.Markup("[grey]thinking… [/]");
                            }

                            reasoningChars += text.Length;
                            if (showReasoning)
                            {
                                console.Markup($"[grey]{Markup.Escape(text)}[/]");
                            }
                        },
                        turn.Token,
                        onAnswerStart: () =>
                        {
                            if (reasoningChars > 0)
                            {
                                console.MarkupLine(showReasoning ? "" : $"[grey]({reasoningChars} characters folded)[/]");
                            }
                        });
                    console.WriteLine();
                    if (finish == ChatFinishReason.Cancelled)
                    {
                        console.MarkupLine("[yellow](stopped)[/]");
                    }
                    else if (finish == ChatFinishReason.Length)
                    {
                        console.MarkupLine("[yellow](cut off: the context is full; /clear starts over)[/]");
                    }
                }
                catch (GenerationRequestException e)
                {
                    console.MarkupLine($"[red]{Markup.Escape(e.Message)}[/] [grey](/clear starts a new conversation)[/]");
                }
                finally
                {
                    turn.Dispose();
                    turn = null;
                }
            }

            return Qwen3Cli.ExitOk;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>A conversation: its messages, without past reasoning, and the thinking mode.</summary>
    internal sealed class Session(ChatService chat, string? system, bool thinking)
    {
        private readonly List<JsonObject> _history = [];

        public bool Thinking { get; private set; } = thinking;

        public void Clear() => _history.Clear();

        /// <summary>
        /// One turn. <c>/think</c> and <c>/no_think</c> in the text reach the model untouched (Qwen3's soft switch);
        /// alone on a line they also set the mode for the following turns.
        /// </summary>
        public async Task<ChatFinishReason> AskAsync(string text, Action<string> onContent, Action<string> onReasoning,
            CancellationToken ct, Action? onAnswerStart = null)
        {
            string trimmed = text.Trim();
            if (trimmed is "/think" or "/no_think")
            {
                Thinking = trimmed == "/think";
            }

            var messages = new JsonArray();
            if (!string.IsNullOrEmpty(system))
            {
                messages.Add(new JsonObject { ["role"] = "system", ["content"] = system });
            }

            foreach (JsonObject m in _history)
            {
                messages.Add(m.DeepClone());
            }

            var user = new JsonObject { ["role"] = "user", ["content"] = text };
            messages.Add(user.DeepClone());
            var answer = new StringBuilder();
            bool started = false;
            ChatFinishReason finish = ChatFinishReason.Stop;
            await foreach (ChatUpdate u in chat.StreamAsync(new ChatRequest { Messages = messages, EnableThinking = Thinking }, ct))
            {
                switch (u)
                {
                    case ReasoningDelta r:
                        onReasoning(r.Text);
                        break;
                    case ContentDelta c:
                        if (!started)
                        {
                            started = true;
                            onAnswerStart?.Invoke();
                        }

                        answer.Append(c.Text);
                        onContent(c.Text);
                        break;
                    case ToolCallStarted s:
                        onContent($"[tool call {s.Name}]");
                        break;
                    case ChatFinished f:
                        finish = f.Reason;
                        break;
                }
            }

            _history.Add(user);
            _history.Add(new JsonObject { ["role"] = "assistant", ["content"] = answer.ToString() });
            return finish;
        }
    }
}
