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
    private const string Help = "/think, /no_think: thinking on or off from now on · /reasoning: show or fold reasoning · /clear: new conversation · /exit"
        + " · with --tools, a call is shown as → name(arguments) and you type its result";

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
        var session = new Session(host.Chat, o.System, thinking: !o.NoThink, o.Tools,
            new SamplingOverrides { Temperature = o.Temperature, Seed = o.Seed });

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
            foreach (PendingCall call in session.PendingCalls)
            {
                await o.Context.Out.WriteLineAsync(call.Readable);
            }

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
                try
                {
                    CancellationToken token = turn.Token;
                    ChatFinishReason finish = await ShowAnswerAsync(console, session, showReasoning,
                        (content, reasoning, start) => session.AskAsync(line, content, reasoning, token, start));
                    // a tool loop by hand: each call shown, its result typed, the model answers from the results
                    while (finish == ChatFinishReason.ToolCalls && session.PendingCalls.Count > 0)
                    {
                        var results = new List<string>();
                        foreach (PendingCall call in session.PendingCalls)
                        {
                            console.Markup($"[cyan]{Markup.Escape(call.Name)} result> [/]");
                            string? result = Console.ReadLine();
                            if (result is null)
                            {
                                return Qwen3Cli.ExitOk;
                            }

                            results.Add(result);
                        }

                        finish = await ShowAnswerAsync(console, session, showReasoning,
                            (content, reasoning, start) => session.AnswerToolResultsAsync(results, content, reasoning, token, start));
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

    /// <summary>
    /// Streams one answer to the terminal: reasoning dimmed (or folded), the answer, then each tool call as
    /// <c>→ get_weather({"city": "Paris"})</c> and a note when the answer was stopped or cut off.
    /// </summary>
    private static async Task<ChatFinishReason> ShowAnswerAsync(IAnsiConsole console, Session session, bool showReasoning,
        Func<Action<string>, Action<string>, Action, Task<ChatFinishReason>> answer)
    {
        int reasoningChars = 0;
        ChatFinishReason finish = await answer(
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
            () =>
            {
                if (reasoningChars > 0)
                {
                    console.MarkupLine(showReasoning ? "" : $"[grey]({reasoningChars} characters folded)[/]");
                }
            });
        console.WriteLine();
        foreach (PendingCall call in session.PendingCalls)
        {
            console.MarkupLine($"[cyan]→ {Markup.Escape(call.Readable)}[/]");
        }

        if (finish == ChatFinishReason.Cancelled)
        {
            console.MarkupLine("[yellow](stopped)[/]");
        }
        else if (finish == ChatFinishReason.Length)
        {
            console.MarkupLine("[yellow](cut off: the context is full; /clear starts over)[/]");
        }

        return finish;
    }

    /// <summary>A call of the last answer, waiting for its result.</summary>
    internal sealed record PendingCall(string Id, string Name, string Arguments)
    {
        /// <summary>How the chat shows it: the function applied to its arguments, <c>get_weather({"city": "Paris"})</c>.</summary>
        public string Readable => $"{Name}({Arguments})";
    }

    /// <summary>
    /// A conversation: its messages, without past reasoning, the thinking mode and the tools offered. An answer that
    /// calls tools leaves <see cref="PendingCalls"/>; <see cref="AnswerToolResultsAsync"/> sends their results (as
    /// <c>tool</c> messages) and the model answers from them, as a client's tool loop does.
    /// </summary>
    internal sealed class Session(ChatService chat, string? system, bool thinking, JsonArray? tools = null, SamplingOverrides? sampling = null)
    {
        private readonly List<JsonObject> _history = [];
        private readonly List<PendingCall> _pending = [];

        public bool Thinking { get; private set; } = thinking;

        /// <summary>The conversation so far (system message aside), answers without their reasoning.</summary>
        public IReadOnlyList<JsonObject> History => _history;

        /// <summary>The calls of the last answer that have no result yet (empty when it called nothing).</summary>
        public IReadOnlyList<PendingCall> PendingCalls => _pending;

        public void Clear()
        {
            _history.Clear();
            _pending.Clear();
        }

        /// <summary>
        /// One turn. <c>/think</c> and <c>/no_think</c> in the text reach the model untouched (Qwen3's soft switch);
        /// alone on a line they also set the mode for the following turns. Calls still waiting for results are dropped,
        /// from the history too (an assistant call without its result is no valid conversation, as OpenAI's API says):
        /// the user asked something else.
        /// </summary>
        public Task<ChatFinishReason> AskAsync(string text, Action<string> onContent, Action<string> onReasoning,
            CancellationToken ct, Action? onAnswerStart = null)
        {
            string trimmed = text.Trim();
            if (trimmed is "/think" or "/no_think")
            {
                Thinking = trimmed == "/think";
            }

            if (_pending.Count > 0)
            {
                JsonObject calls = _history[^1];
                calls.Remove("tool_calls");
                if (string.IsNullOrEmpty((string?)calls["content"]))
                {
                    _history.RemoveAt(_history.Count - 1);
                }

                _pending.Clear();
            }

            return RespondAsync([new JsonObject { ["role"] = "user", ["content"] = text }], onContent, onReasoning, ct, onAnswerStart);
        }

        /// <summary>The results of <see cref="PendingCalls"/>, in their order, as <c>tool</c> messages; the model answers from them.</summary>
        public Task<ChatFinishReason> AnswerToolResultsAsync(IReadOnlyList<string> results, Action<string> onContent, Action<string> onReasoning,
            CancellationToken ct, Action? onAnswerStart = null)
        {
            if (results.Count != _pending.Count)
            {
                throw new ArgumentException($"{_pending.Count} calls wait for results; got {results.Count}.", nameof(results));
            }

            List<JsonObject> messages = [.. _pending.Select((c, i) => new JsonObject { ["role"] = "tool", ["tool_call_id"] = c.Id, ["content"] = results[i] })];
            _pending.Clear();
            return RespondAsync(messages, onContent, onReasoning, ct, onAnswerStart);
        }

        /// <summary>Generates the next answer after the history and <paramref name="added"/>; both join the history once it is complete.</summary>
        private async Task<ChatFinishReason> RespondAsync(List<JsonObject> added, Action<string> onContent, Action<string> onReasoning,
            CancellationToken ct, Action? onAnswerStart)
        {
            var messages = new JsonArray();
            if (!string.IsNullOrEmpty(system))
            {
                messages.Add(new JsonObject { ["role"] = "system", ["content"] = system });
            }

            foreach (JsonObject m in _history.Concat(added))
            {
                messages.Add(m.DeepClone());
            }

            var answer = new StringBuilder();
            var calls = new List<(string Id, string Name, StringBuilder Arguments)>();
            bool started = false;
            ChatFinishReason finish = ChatFinishReason.Stop;
            var request = new ChatRequest { Messages = messages, EnableThinking = Thinking, Tools = tools, Sampling = sampling ?? new SamplingOverrides() };
            await foreach (ChatUpdate u in chat.StreamAsync(request, ct))
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
                        calls.Add((s.Id, s.Name, new StringBuilder()));
                        break;
                    case ToolCallArgumentsDelta a:
                        calls[a.Index].Arguments.Append(a.Fragment);
                        break;
                    case ChatFinished f:
                        finish = f.Reason;
                        break;
                }
            }

            _history.AddRange(added);
            var assistant = new JsonObject { ["role"] = "assistant", ["content"] = answer.ToString() };
            if (calls.Count > 0)
            {
                assistant["tool_calls"] = new JsonArray([.. calls.Select(c => (JsonNode)new JsonObject
                {
                    ["id"] = c.Id,
                    ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments.ToString() },
                })]);
                _pending.AddRange(calls.Select(c => new PendingCall(c.Id, c.Name, c.Arguments.ToString())));
            }

            _history.Add(assistant);
            return finish;
        }
    }
}
