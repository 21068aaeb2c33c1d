using Qwen3Sharp.Loading;
using Qwen3Sharp.Model;

namespace Qwen3Sharp.Tests.Model;

public sealed class RotaryEmbeddingTests
{
    private static Qwen3Config Config(RopeScaling? scaling) => ModelSynthesizer.Preset("qwen3-1.7b") with { RopeScaling = scaling };

    [Fact]
    public void Create_NoScaling_IsThetaPowers()
    {
        RotaryEmbedding r = RotaryEmbedding.Create(Config(null));
        Assert.Equal(64, r.InverseFrequencies.Length);
        Assert.Equal(1f, r.InverseFrequencies[0]);
        Assert.Equal((float)Math.Pow(1e6, -20.0 / 128), r.InverseFrequencies[10], 1e-9f);
        Assert.Equal(1f, r.AttentionScaling);
    }

    [Fact]
    public void Create_Linear_DividesByFactor()
    {
        RotaryEmbedding plain = RotaryEmbedding.Create(Config(null));
        RotaryEmbedding linear = RotaryEmbedding.Create(Config(new RopeScaling { RopeType = "linear", Factor = 4 }));
        for (int i = 0; i < 64; i++)
        {
            Assert.Equal(plain.InverseFrequencies[i] / 4, linear.InverseFrequencies[i], plain.InverseFrequencies[i] * 1e-6f);
        }
    }

    /// <summary>Expected values from transformers' _compute_yarn_parameters evaluated in Python (float64):
    /// head_dim 128, theta 1e6, factor 4, original 32768 → correction range [23, 40], attention factor 1.1386.</summary>
    [Theory]
    [InlineData(0, 1.0)]
    [InlineData(10, 0.1154781984689458)]
    [InlineData(20, 0.01333521432163324)]
    [InlineData(30, 0.0010643609812470017)]
    [InlineData(40, 4.445698525097307e-05)]
    [InlineData(50, 5.133812566142866e-06)]
    [InlineData(63, 3.102344401879299e-07)]
    public void Create_Yarn_MatchesTransformers(int index, double expected)
    {
        RotaryEmbedding r = RotaryEmbedding.Create(Config(new RopeScaling { RopeType = "yarn", Factor = 4, OriginalMaxPositionEmbeddings = 32768 }));
        Assert.Equal(expected, r.InverseFrequencies[index], expected * 1e-6);
        Assert.Equal(1.138629436111989, r.AttentionScaling, 1e-6);
    }

    [Fact]
    public void Create_YarnWithAttentionFactor_UsesIt()
    {
        RotaryEmbedding r = RotaryEmbedding.Create(Config(new RopeScaling { RopeType = "yarn", Factor = 4, AttentionFactor = 1.5 }));
        Assert.Equal(1.5f, r.AttentionScaling);
    }
}
