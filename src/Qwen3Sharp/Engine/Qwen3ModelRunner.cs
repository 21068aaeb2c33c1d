using Qwen3Sharp.Cache;
using Qwen3Sharp.Model;

namespace Qwen3Sharp.Engine;

/// <summary>
/// <see cref="Qwen3Model"/> as the engine drives it: up to <see cref="MaxSequences"/> sequences, each with its own
/// KV cache. Caches are reused after a sequence ends (their pages stay committed), so steady state allocates nothing.
/// </summary>
public sealed class Qwen3ModelRunner : IModelRunner
{
    private readonly Qwen3Model _model;
    private readonly Stack<KvCache> _free = new();
    private readonly List<KvCache> _all = [];

    public Qwen3ModelRunner(Qwen3Model model, int maxSequences)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSequences, 1);
        _model = model;
        MaxSequences = maxSequences;
    }

    public int VocabSize => _model.VocabSize;

    public int ContextSize => _model.ContextSize;

    public int MaxSequences { get; }

    public ISequenceState? TryAllocateSequence()
    {
        lock (_free)
        {
            if (_free.TryPop(out KvCache? cache))
            {
                return new Sequence(this, cache);
            }

            if (_all.Count >= MaxSequences)
            {
                return null;
            }

            cache = _model.CreateCache();
            _all.Add(cache);
            return new Sequence(this, cache);
        }
    }

    public void Forward(ISequenceState sequence, ReadOnlySpan<int> tokenIds, Span<float> logits)
    {
        var s = (Sequence)sequence;
        _model.Forward(tokenIds, s.Length, s.Cache, logits);
        s.Length += tokenIds.Length;
    }

    public void Dispose()
    {
        foreach (KvCache cache in _all)
        {
            cache.Dispose();
        }

        _model.Dispose();
    }

    private void Release(KvCache cache)
    {
        lock (_free)
        {
            _free.Push(cache);
        }
    }

    private sealed class Sequence(Qwen3ModelRunner owner, KvCache cache) : ISequenceState
    {
        private bool _released;

        public KvCache Cache { get; } = cache;

        public int Length { get; set; }

        public void Dispose()
        {
            if (!_released)
            {
                _released = true;
                owner.Release(Cache);
            }
        }
    }
}
