using Qwen3Sharp.Sampling;

namespace Qwen3Sharp.Tests.Sampling;

public class SamplingDefaultsTests
{
    [Fact]
    public void ForMode_Thinking_IsQwenRecommendation()
    {
        SamplingParams p = SamplingDefaults.ForMode(thinking: true);
        Assert.Equal((0.6f, 0.95f, 20, 0f), (p.Temperature, p.TopP, p.TopK, p.MinP));
    }

    [Fact]
    public void ForMode_NonThinking_IsQwenRecommendation()
    {
        SamplingParams p = SamplingDefaults.ForMode(thinking: false);
        Assert.Equal((0.7f, 0.8f, 20, 0f), (p.Temperature, p.TopP, p.TopK, p.MinP));
    }

    [Fact]
    public void Resolve_GenerationConfig_SuppliesPenaltiesButNotModeFields()
    {
        var model = new ModelSamplingDefaults { Temperature = 0.6f, TopP = 0.95f, TopK = 20, RepetitionPenalty = 1.05f, DoSample = true };
        SamplingParams p = SamplingDefaults.Resolve(thinking: false, model);
        Assert.Equal((0.7f, 0.8f, 20, 1.05f), (p.Temperature, p.TopP, p.TopK, p.RepetitionPenalty));
    }

    [Fact]
    public void Resolve_ModelDefaultsWin_TakesGenerationConfigValues()
    {
        var model = new ModelSamplingDefaults { Temperature = 0.3f, TopK = 40 };
        SamplingParams p = SamplingDefaults.Resolve(thinking: false, model, modelDefaultsWin: true);
        Assert.Equal((0.3f, 0.8f, 40), (p.Temperature, p.TopP, p.TopK));
    }

    [Fact]
    public void Resolve_DoSampleFalse_IsGreedy()
        => Assert.Equal(0f, SamplingDefaults.Resolve(true, new ModelSamplingDefaults { DoSample = false }).Temperature);

    [Fact]
    public void Resolve_NoModelDefaults_IsModeDefaults()
        => Assert.Equal(SamplingDefaults.ForMode(true), SamplingDefaults.Resolve(true));
}
