using System.Text;
using System.Text.Json.Nodes;

namespace Qwen3Sharp.Tests.Server;

/// <summary>usage.prompt_tokens_details.cached_tokens over HTTP, with the tiny model's real Qwen3 chat template.</summary>
public sealed class PrefixCacheServerTests(TinyModelFixture fixture) : IClassFixture<TinyModelFixture>
{
    private readonly TinyModelFixture _f = fixture;

    private async Task<JsonNode> PostOk(string path, JsonNode body)
    {
        using HttpResponseMessage r = await _f.Http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        string text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, text);
        return JsonNode.Parse(text)!;
    }

    private static JsonArray Tools() => new(new JsonObject
    {
        ["type"] = "function",
        ["function"] = new JsonObject
        {
            ["name"] = "get_weather",
            ["description"] = "Current weather for a city, with temperature, wind and a short forecast for the afternoon.",
            ["parameters"] = JsonNode.Parse("""{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}"""),
        },
    });

    [Fact]
    public async Task MultiTurnChat_SecondTurnWithReasoningDroppedByTemplate_ReportsTheSharedPrefixAsCached()
    {
        string system = $"You are a careful assistant ({Guid.NewGuid():N}). Answer briefly and use tools when they help.";
        var turn1 = new JsonObject
        {
            ["model"] = "tiny",
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "system", ["content"] = system },
                new JsonObject { ["role"] = "user", ["content"] = "What is the weather like in Paris today, and should I take an umbrella?" }),
            ["tools"] = Tools(),
            ["temperature"] = 0,
            ["max_tokens"] = 8,
        };
        JsonNode r1 = await PostOk("/v1/chat/completions", turn1);
        int prompt1 = (int)r1["usage"]!["prompt_tokens"]!;
        Assert.Equal(0, (int)r1["usage"]!["prompt_tokens_details"]!["cached_tokens"]!);
        Assert.True(prompt1 > 100, $"the shared prefix should span several blocks; prompt has {prompt1} tokens");

        // Turn 2: the previous reply with its reasoning (which the template drops) and a new user message.
        var turn2 = (JsonObject)turn1.DeepClone();
        JsonArray messages = turn2["messages"]!.AsArray();
        messages.Add(new JsonObject
        {
            ["role"] = "assistant",
            ["content"] = "<think>\nThe user asks about Paris; I could call the weather tool but will answer directly.\n</think>\n\nTake an umbrella.",
        });
        messages.Add(new JsonObject { ["role"] = "user", ["content"] = "And tomorrow?" });
        JsonNode r2 = await PostOk("/v1/chat/completions", turn2);
        int prompt2 = (int)r2["usage"]!["prompt_tokens"]!;
        int cached = (int)r2["usage"]!["prompt_tokens_details"]!["cached_tokens"]!;

        // Turn 1's prompt ends "<|im_start|>assistant\n", which turn 2 repeats: all its full blocks but the last are shared.
        Assert.True(cached >= (prompt1 - 4) / 16 * 16 && cached > 0, $"cached {cached} of turn 1's {prompt1} prompt tokens");
        Assert.True(cached < prompt2 && cached % 16 == 0, $"cached {cached} of {prompt2}");
        Assert.True(cached <= prompt1 / 16 * 16 + 16, "the dropped reasoning (turn 1's output) is not part of turn 2's prompt");
    }

    [Fact]
    public async Task Completions_RepeatedPrompt_ReportsCachedTokens()
    {
        string prompt = string.Concat(Enumerable.Repeat($"The sea {Guid.NewGuid():N} is wide and deep. ", 8));
        var body = new JsonObject { ["model"] = "tiny", ["prompt"] = prompt, ["temperature"] = 0, ["max_tokens"] = 4 };
        JsonNode r1 = await PostOk("/v1/completions", body);
        JsonNode r2 = await PostOk("/v1/completions", body);
        int promptTokens = (int)r2["usage"]!["prompt_tokens"]!;
        Assert.Equal(0, (int)r1["usage"]!["prompt_tokens_details"]!["cached_tokens"]!);
        Assert.Equal((promptTokens - 1) / 16 * 16, (int)r2["usage"]!["prompt_tokens_details"]!["cached_tokens"]!);
        Assert.Equal((string)r1["choices"]![0]!["text"]!, (string)r2["choices"]![0]!["text"]!);
    }
}
