using Qwen3Sharp.Structured;

namespace Qwen3Sharp.Engine;

/// <summary>A sampler whose choices are limited by a <see cref="TokenConstraint"/> (structured output).</summary>
internal sealed class ConstrainedSampler(ITokenSampler inner, TokenConstraint constraint) : ITokenSampler
{
    public int Sample(Span<float> logits)
    {
        constraint.Mask(logits);   // logprobs are then reported over the allowed tokens
        return inner.Sample(logits);
    }

    public void Accept(int tokenId)
    {
        inner.Accept(tokenId);
        constraint.Accept(tokenId);
    }
}
