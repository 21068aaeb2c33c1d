using System.Text.Json.Nodes;
using Qwen3Sharp.Tokenization;
using static Qwen3Sharp.Tests.Tokenization.TokenizerTestData;

namespace Qwen3Sharp.Tests.Tokenization;

public class AddedTokenFlagTests
{
    // Same mutation as gen-fixtures.mjs: <think> lstrip, </think> rstrip, <tool_call> both, and a normalized
    // added token "Å" (id 151669) that matches after NFC.
    private static readonly Lazy<Qwen3Tokenizer> s_variant = new(() =>
    {
        JsonNode json = JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerDirectory, "tokenizer.json")))!;
        JsonArray added = json["added_tokens"]!.AsArray();
        JsonNode ById(int id) => added.First(t => (int)t!["id"]! == id)!;
        ById(151667)["lstrip"] = true;
        ById(151668)["rstrip"] = true;
        ById(151657)["lstrip"] = true;
        ById(151657)["rstrip"] = true;
        added.Add(new JsonObject
        {
            ["id"] = 151669, ["content"] = "\u00C5", ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = true, ["special"] = false,
        });
        string config = File.ReadAllText(Path.Combine(TokenizerDirectory, "tokenizer_config.json"));
        return Qwen3Tokenizer.FromJson(json.ToJsonString(), config);
    });

    [Fact]
    public void Encode_StripAndNormalizedFlags_MatchTransformersJs()
    {
        Assert.NotEmpty(Cases.AddedTokenFlags);
        foreach (FlagCase c in Cases.AddedTokenFlags)
        {
            int[] actual = s_variant.Value.Encode(c.Text);
            Assert.True(actual.AsSpan().SequenceEqual(c.Ids), $"{Show(c.Text)}: expected {Show(c.Ids)}, got {Show(actual)}");
        }
    }

    [Fact]
    public void VocabSize_ExtraAddedToken_CountsIt()
    {
        Assert.Equal(151_670, s_variant.Value.VocabSize);
        Assert.Equal("\u00C5", s_variant.Value.Decode([151669]));
    }
}
