using Qwen3Sharp.Sampling;

namespace Qwen3Sharp.Engine;

/// <summary>The sampler chain as the engine loop uses it.</summary>
internal sealed class SamplerAdapter(Sampler sampler) : ITokenSampler
{
    public static ITokenSampler Create(GenerationRequest request, int vocabSize)
    {
        var sampler = new SamplerAdapter(new Sampler(vocabSize, request.Sampling, request.PromptTokens as int[] ?? [.. request.PromptTokens]));
        return request.Constraint is { } c ? new ConstrainedSampler(sampler, c) : sampler;
    }

    public int Sample(Span<float> logits) => sampler.Sample(logits);

    public void Accept(int tokenId) => sampler.Accept(tokenId);
}
