using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Qwen3Sharp.Sampling;
using Qwen3Sharp.Scheduling;

namespace Qwen3Sharp.Engine;

/// <summary>
/// The engine: one loop thread owns the model and its KV memory (vLLM's EngineCore). Requests enter a bounded
/// queue and come back as an async stream of <see cref="GenerationEvent"/>s. Each step the scheduler picks
/// what runs, the runner computes it, and sampled tokens go back to their requests.
/// </summary>
public sealed class InferenceEngine : IDisposable
{
    private readonly IModelRunner _runner;
    private readonly Func<GenerationRequest, ITokenSampler> _createSampler;
    private readonly Func<bool, ITextDecoder> _createDecoder;
    private readonly EngineOptions _options;
    private readonly Channel<SequenceRequest> _incoming;
    private readonly Scheduler _scheduler;
    private readonly Thread _thread;
    private readonly float[] _logits;       // [MaxSequences + 1, vocab]: one row per sampling sequence, the last is scratch
    private readonly int[] _stepTokens;     // [StepTokenBudget]: the step's tokens, concatenated
    private readonly RunnerEntry[] _entries; // [MaxSequences]
    private readonly List<SequenceRequest> _cancelled = [];   // reused each step
    private readonly CancellationTokenSource _shutdown = new();
    private long _nextId;
    private int _queued;

    public InferenceEngine(IModelRunner runner, Func<GenerationRequest, ITokenSampler> createSampler,
        Func<bool, ITextDecoder> createDecoder, EngineOptions? options = null)
    {
        _runner = runner;
        _createSampler = createSampler;
        _createDecoder = createDecoder;
        _options = options ?? new EngineOptions();
        _incoming = Channel.CreateUnbounded<SequenceRequest>(new UnboundedChannelOptions { SingleReader = true });
        _scheduler = new Scheduler(_options.StepTokenBudget, runner.TryAllocateSequence, runner.TryReserve, runner.MaxSequences, runner,
            _options.PrefillFirst);
        _logits = new float[(long)(runner.MaxSequences + 1) * runner.VocabSize];
        _stepTokens = new int[_options.StepTokenBudget];
        _entries = new RunnerEntry[runner.MaxSequences];
        Stats = new EngineStats(runner);
        Metrics = new EngineMetrics(() => Volatile.Read(ref _queued));
        _thread = new Thread(Loop) { IsBackground = true, Name = "qwen3-engine" };
        _thread.Start();
    }

    public int ContextSize => _runner.ContextSize;

    /// <summary>Counters, gauges and latency histograms (vLLM's meanings), for <c>GET /metrics</c>.</summary>
    public EngineMetrics Metrics { get; }

    public int VocabSize => _runner.VocabSize;

    /// <summary>Live counters of the engine (requests running and waiting, KV blocks, prefix cache, preemptions).</summary>
    public EngineStats Stats { get; }

    /// <summary>Requests submitted and not yet finished.</summary>
    public int PendingRequestCount => Volatile.Read(ref _queued);

    /// <summary>
    /// Generates for one request. Validation and queue-full errors are thrown when enumeration starts.
    /// Cancelling <paramref name="cancellationToken"/>, or leaving the enumeration early, stops the generation
    /// within one token and frees its memory; the last event is then a <see cref="GenerationFinished"/> with
    /// <see cref="FinishReason.Cancelled"/>, if still read.
    /// </summary>
    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(GenerationRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        SequenceRequest r = Submit(request);
        using CancellationTokenRegistration registration = cancellationToken.Register(() => Cancel(r));
        try
        {
            await foreach (GenerationEvent e in r.Output.Reader.ReadAllAsync(CancellationToken.None))
            {
                if (e is TokenGenerated && cancellationToken.IsCancellationRequested)
                {
                    continue;  // produced before the engine saw the cancel: drop it, wait for the finish
                }

                yield return e;
            }
        }
        finally
        {
            Cancel(r);  // no-op once finished
        }
    }

    private SequenceRequest Submit(GenerationRequest request)
    {
        ObjectDisposedException.ThrowIf(_shutdown.IsCancellationRequested, this);
        int promptCount = request.PromptTokens.Count;
        if (promptCount == 0)
        {
            throw new GenerationRequestException("The prompt is empty.", "prompt");
        }

        if (promptCount >= _runner.ContextSize)
        {
            throw new GenerationRequestException(
                $"The prompt has {promptCount} tokens, but the context holds {_runner.ContextSize} (prompt and completion together).",
                "messages");
        }

        if (request.MaxTokens is < 0)
        {
            throw new GenerationRequestException("max_tokens must be at least 0.", "max_tokens");
        }

        try
        {
            request.Sampling.Validate(_runner.VocabSize);
        }
        catch (ArgumentOutOfRangeException ex)
        {
            throw new GenerationRequestException(ex.Message, ex.ParamName);
        }

        foreach (int id in request.PromptTokens)
        {
            if ((uint)id >= (uint)_runner.VocabSize)
            {
                throw new GenerationRequestException($"Token id {id} is outside the vocabulary (0..{_runner.VocabSize - 1}).", "prompt");
            }
        }

        if (Interlocked.Increment(ref _queued) > _options.MaxQueuedRequests + _runner.MaxSequences)
        {
            Interlocked.Decrement(ref _queued);
            throw new EngineOverloadedException(
                $"The server is busy: {_options.MaxQueuedRequests} requests are already waiting. Retry shortly.");
        }

        int maxNew = Math.Min(request.MaxTokens ?? int.MaxValue, _runner.ContextSize - promptCount);
        var output = Channel.CreateUnbounded<GenerationEvent>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = true });
        var r = new SequenceRequest(Interlocked.Increment(ref _nextId), request, maxNew, output);
        _incoming.Writer.TryWrite(r);
        return r;
    }

    private static void Cancel(SequenceRequest r) => r.CancelRequested = true;

    private void Loop()
    {
        ChannelReader<SequenceRequest> incoming = _incoming.Reader;
        while (!_shutdown.IsCancellationRequested)
        {
            while (incoming.TryRead(out SequenceRequest? r))
            {
                Admit(r);
            }

            _scheduler.CollectCancelled(_cancelled);
            foreach (SequenceRequest r in _cancelled)
            {
                Complete(r, FinishReason.Cancelled, flush: false);
            }

            _cancelled.Clear();
            PublishSchedulerState();

            if (!_scheduler.HasWork)
            {
                try
                {
                    incoming.WaitToReadAsync(_shutdown.Token).AsTask().GetAwaiter().GetResult();
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                continue;
            }

            try
            {
                Step();
            }
            catch (Exception ex)
            {
                // past the per-request guards (admission, forward pass, sampling): a failure inside the step itself, e.g.
                // the runner failing an allocation while the scheduler plans. The requests it holds end with the error;
                // the loop, and so the server, lives on
                FailAll(ex);
            }

            PublishSchedulerState();
        }

        // Shutting down: every request still here ends now, running, waiting or not yet admitted.
        while (incoming.TryRead(out SequenceRequest? r))
        {
            Admit(r);
        }

        foreach (SequenceRequest r in _scheduler.Running.Concat(_scheduler.Waiting).ToList())
        {
            Complete(r, FinishReason.Cancelled, flush: false);
        }

        PublishSchedulerState();
    }

    /// <summary>
    /// Running and waiting requests, KV use, preemptions and prefix-cache tokens for <see cref="Stats"/> and <see cref="Metrics"/>; a runner
    /// without paged memory counts a sequence slot as a KV block.
    /// </summary>
    private void PublishSchedulerState()
    {
        Stats.Update(_scheduler);
        bool paged = _runner.KvBlockCount > 0;
        Metrics.SetSchedulerState(_scheduler.RunningCount,
            paged ? _runner.UsedKvBlockCount : _scheduler.RunningCount,
            paged ? _runner.KvBlockCount : _runner.MaxSequences);
        Metrics.SetPreemptions(_scheduler.PreemptionCount);
        Metrics.SetPrefixCache(_scheduler.PrefixQueriedTokens, _scheduler.PrefixHitTokens);
    }

    private void Admit(SequenceRequest r)
    {
        try
        {
            r.Sampler = _createSampler(r.Request);
            r.Decoder = _createDecoder(r.Request.SkipSpecialTokens);
            r.StopMatcher = new StopStringMatcher(r.Request.StopStrings);
        }
        catch (Exception ex)
        {
            Interlocked.Decrement(ref _queued);   // the loop thread lives on; only this request fails
            Metrics.RecordFinished(RequestOutcome.Error, r.ArrivalTimestamp, Stopwatch.GetTimestamp());
            r.Output.Writer.TryComplete(ex);
            return;
        }

        if (r.MaxNewTokens == 0 || r.CancelRequested)
        {
            Complete(r, r.CancelRequested ? FinishReason.Cancelled : FinishReason.Length, flush: false);
            return;
        }

        _scheduler.Add(r);
    }

    private void Step()
    {
        IReadOnlyList<ScheduledChunk> plan = _scheduler.Schedule();
        PublishSchedulerState();
        if (plan.Count == 0)
        {
            Thread.Sleep(1);  // waiting requests, no free sequence, nothing running: cannot happen while running frees
            return;
        }

        // One forward pass over every scheduled request: decode tokens and prompt chunks, concatenated.
        int offset = 0, rows = 0;
        for (int i = 0; i < plan.Count; i++)
        {
            (SequenceRequest r, int n) = plan[i];
            CollectionsMarshal.AsSpan((List<int>)r.Tokens).Slice(r.ComputedTokenCount, n).CopyTo(_stepTokens.AsSpan(offset, n));
            bool samples = r.ComputedTokenCount + n == r.TokenCount;
            _entries[i] = new RunnerEntry(r.Sequence!, offset, n, samples);
            offset += n;
            rows += samples ? 1 : 0;
        }

        try
        {
            _runner.ForwardBatch(_stepTokens.AsSpan(0, offset), _entries.AsSpan(0, plan.Count), _logits);
        }
        catch (Exception ex)
        {
            for (int i = 0; i < plan.Count; i++)
            {
                Fail(plan[i].Request, ex);
            }

            Array.Clear(_entries);
            PublishSchedulerState();
            return;
        }

        // The plan list is reused by Schedule; requests finishing below only leave the running list.
        int row = 0;
        for (int i = 0; i < plan.Count; i++)
        {
            (SequenceRequest r, int n) = plan[i];
            r.ComputedTokenCount += n;
            if (_entries[i].ComputeLogits)
            {
                try
                {
                    Produce(r, _logits.AsSpan(row++ * _runner.VocabSize, _runner.VocabSize));
                }
                catch (Exception ex)
                {
                    // a request's own sampling failed (e.g. a structured-output mask past its time limit): only that
                    // request ends, with the error; the loop thread and the other requests live on
                    Fail(r, ex);
                }
            }
        }

        Array.Clear(_entries, 0, plan.Count);
        PublishSchedulerState();
    }

    /// <summary>Ends a running request with <paramref name="error"/>: its sequence and KV blocks are freed, its reader sees the exception.</summary>
    private void Fail(SequenceRequest r, Exception error)
    {
        _scheduler.Finish(r);
        Interlocked.Decrement(ref _queued);
        Metrics.RecordFinished(RequestOutcome.Error, r.ArrivalTimestamp, Stopwatch.GetTimestamp());
        r.Output.Writer.TryComplete(error);
    }

    /// <summary>Ends every running and waiting request with <paramref name="error"/>, each as far as the scheduler's state allows.</summary>
    private void FailAll(Exception error)
    {
        foreach (SequenceRequest r in _scheduler.Running.Concat(_scheduler.Waiting).ToList())
        {
            try
            {
                Fail(r, error);
            }
            catch (Exception)
            {
                r.Output.Writer.TryComplete(error);   // the reader still learns of it
            }
        }
    }

    /// <summary>Chooses the request's next token from <paramref name="logits"/> [vocab] and emits it.</summary>
    private void Produce(SequenceRequest r, Span<float> logits)
    {
        GenerationRequest q = r.Request;
        int token;
        bool forced = r.ForcedTokens.Count > 0;
        TokenLogprobs? logprobs = null;
        if (forced)
        {
            token = r.ForcedTokens.Dequeue();
        }
        else
        {
            token = r.Sampler!.Sample(logits);   // leaves the logits as they are
            if (q.TopLogprobs is { } topCount)
            {
                var top = new TokenLogprob[Math.Min(topCount, LogprobCalculator.MaxTopCount)];
                float logprob = LogprobCalculator.Compute(logits, token, top);
                logprobs = new TokenLogprobs(token, logprob, top);
            }
        }

        r.Sampler!.Accept(token);
        r.AppendToken(token);
        RecordToken(r);
        TrackReasoning(r, token);

        if (q.StopTokenIds.Contains(token))
        {
            Emit(r, token, "", forced, logprobs);
            Complete(r, FinishReason.Stop, flush: true, stopToken: token);
            return;
        }

        string text = r.StopMatcher!.Append(r.Decoder!.Append(token));
        Emit(r, token, text, forced, logprobs);
        if (r.StopMatcher.Matched is { } stop)
        {
            Complete(r, FinishReason.Stop, flush: false, stopString: stop);
        }
        else if (r.GeneratedTokenCount >= r.MaxNewTokens)
        {
            Complete(r, FinishReason.Length, flush: true);
        }
    }

    private void RecordToken(SequenceRequest r)
    {
        long now = Stopwatch.GetTimestamp();
        if (r.GeneratedTokenCount == 1)
        {
            Metrics.RecordFirstToken(r.ArrivalTimestamp, now, r.PromptTokenCount);
        }
        else
        {
            Metrics.RecordNextToken(r.LastTokenTimestamp, now);
        }

        r.LastTokenTimestamp = now;
    }

    private void TrackReasoning(SequenceRequest r, int token)
    {
        if (token == _options.ThinkStartTokenId)
        {
            r.InsideReasoning = true;
            return;
        }

        if (token == _options.ThinkEndTokenId)
        {
            r.InsideReasoning = false;
            r.ForcedTokens.Clear();
            return;
        }

        if (!r.InsideReasoning)
        {
            return;
        }

        r.ReasoningTokenCount++;
        if (r.Request.ThinkingBudget is { } budget && !r.BudgetSpent && r.ReasoningTokenCount >= budget.MaxTokens)
        {
            r.BudgetSpent = true;
            foreach (int t in budget.CloseTokens)
            {
                r.ForcedTokens.Enqueue(t);
            }
        }
    }

    private static void Emit(SequenceRequest r, int token, string text, bool forced, TokenLogprobs? logprobs) =>
        r.Output.Writer.TryWrite(new TokenGenerated
        {
            TokenId = token,
            TextDelta = text,
            Forced = forced,
            ReasoningTokenCount = r.ReasoningTokenCount,
            Logprobs = logprobs,
        });

    private void Complete(SequenceRequest r, FinishReason reason, bool flush, string? stopString = null, int? stopToken = null)
    {
        string rest = "";
        if (flush && r.Decoder is not null && r.StopMatcher is not null)
        {
            rest = r.StopMatcher.Append(r.Decoder.Flush());
            if (r.StopMatcher.Matched is { } late)
            {
                stopString = late;
                reason = FinishReason.Stop;
            }
            else
            {
                rest += r.StopMatcher.Flush();
            }
        }

        _scheduler.Finish(r);
        Interlocked.Decrement(ref _queued);
        Metrics.RecordFinished(reason switch
        {
            FinishReason.Stop => RequestOutcome.Stop,
            FinishReason.Length => RequestOutcome.Length,
            _ => RequestOutcome.Abort,
        }, r.ArrivalTimestamp, Stopwatch.GetTimestamp());
        r.Output.Writer.TryWrite(new GenerationFinished
        {
            Reason = reason,
            TextDelta = rest,
            StopString = stopString,
            StopTokenId = stopToken,
            Usage = new GenerationUsage(r.PromptTokenCount, r.GeneratedTokenCount, r.ReasoningTokenCount)
            {
                CachedPromptTokenCount = r.CachedPromptTokenCount,
            },
        });
        r.Output.Writer.TryComplete();
    }

    public void Dispose()
    {
        if (_shutdown.IsCancellationRequested)
        {
            return;
        }

        _shutdown.Cancel();
        _thread.Join();
        _runner.Dispose();
        _shutdown.Dispose();
    }
}
