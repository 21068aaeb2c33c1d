using System.Net;
using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;

namespace Qwen3Sharp.Tests.Server;

/// <summary>POST /v1/completions (raw prompts), the model list, /health and llama.cpp's utility endpoints.</summary>
public sealed class CompletionsAndUtilityTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const string Prompt = "The answer is";
    private readonly ServerHarness _server = fixture.Server;

    private static JsonObject Body(JsonNode prompt, bool? stream = null)
    {
        var body = new JsonObject { ["model"] = ServerHarness.ModelName, ["prompt"] = prompt };
        if (stream is { } s)
        {
            body["stream"] = s;
        }

        return body;
    }

    [Fact]
    public async Task Completions_StringPrompt_ContinuesRawText()
    {
        JsonNode r = await _server.PostOkAsync("/v1/completions", Body(Prompt));
        Assert.Equal("text_completion", (string)r["object"]!);
        Assert.StartsWith("cmpl-", (string)r["id"]!);
        JsonNode choice = r["choices"]![0]!;
        Assert.Equal(Scripts.RawContinuation, (string)choice["text"]!);
        Assert.Equal("stop", (string)choice["finish_reason"]!);
        Assert.Null(choice["logprobs"]);
        Assert.Equal(ServerHarness.Tokenizer.Encode(Prompt).Length, (int)r["usage"]!["prompt_tokens"]!);
        Assert.Equal(ServerHarness.Tokenizer.Encode(Scripts.RawContinuation).Length + 1, (int)r["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Completions_DefaultMaxTokensIs16()
    {
        JsonNode r = await _server.PostOkAsync("/v1/completions", Body("<|im_start|>user\nsing forever<|im_end|>\n<|im_start|>assistant\n"));
        Assert.Equal("length", (string)r["choices"]![0]!["finish_reason"]!);
        Assert.Equal(16, (int)r["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Completions_ChatShapedPrompt_NoReasoningParser()
    {
        JsonObject body = Body("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        body["max_tokens"] = 64;
        using HttpResponseMessage response = await _server.PostAsync("/v1/completions", body);
        string raw = await response.Content.ReadAsStringAsync();
        Assert.Contains("\"<think>\\n", raw);  // tags written as they are, not as \u003C escapes
        JsonNode r = JsonNode.Parse(raw)!;
        Assert.Equal($"<think>\n{Scripts.Reasoning}\n</think>\n\n{Scripts.Answer}", (string)r["choices"]![0]!["text"]!);
    }

    [Fact]
    public async Task Completions_TokenIdPrompt_SameAsTextAndEchoDecodes()
    {
        int[] ids = ServerHarness.Tokenizer.Encode(Prompt);
        JsonObject body = Body(new JsonArray(ids.Select(i => (JsonNode)i).ToArray()));
        body["echo"] = true;
        JsonNode r = await _server.PostOkAsync("/v1/completions", body);
        Assert.Equal(Prompt + Scripts.RawContinuation, (string)r["choices"]![0]!["text"]!);
    }

    [Fact]
    public async Task Completions_PromptArraysTimesN_ChoicesInPromptMajorOrder()
    {
        int[] ids = ServerHarness.Tokenizer.Encode("Other");
        foreach (JsonNode prompts in new JsonNode[]
                 {
                     new JsonArray("A", "B"),
                     new JsonArray(new JsonArray(ids.Select(i => (JsonNode)i).ToArray()), new JsonArray(ids.Select(i => (JsonNode)i).ToArray())),
                 })
        {
            JsonObject body = Body(prompts);
            body["n"] = 2;
            body["echo"] = true;
            JsonNode r = await _server.PostOkAsync("/v1/completions", body);
            var choices = r["choices"]!.AsArray();
            Assert.Equal([0, 1, 2, 3], choices.Select(c => (int)c!["index"]!));
            string first = prompts[0] is JsonArray ? "Other" : "A";
            string second = prompts[0] is JsonArray ? "Other" : "B";
            Assert.Equal([first, first, second, second], choices.Select(c => ((string)c!["text"]!)[..^Scripts.RawContinuation.Length]));
        }
    }

    [Fact]
    public async Task Completions_StopAndMaxTokens()
    {
        JsonObject body = Body(Prompt);
        body["stop"] = ",";
        JsonNode r = await _server.PostOkAsync("/v1/completions", body);
        Assert.Equal(" forty two", (string)r["choices"]![0]!["text"]!);
        Assert.Equal("stop", (string)r["choices"]![0]!["finish_reason"]!);

        body = Body(Prompt);
        body["max_tokens"] = 2;
        r = await _server.PostOkAsync("/v1/completions", body);
        Assert.Equal("length", (string)r["choices"]![0]!["finish_reason"]!);
        Assert.Equal(2, (int)r["usage"]!["completion_tokens"]!);
    }

    [Fact]
    public async Task Completions_Logprobs_LegacyShape()
    {
        JsonObject body = Body(Prompt);
        body["logprobs"] = 2;
        JsonNode lp = (await _server.PostOkAsync("/v1/completions", body))["choices"]![0]!["logprobs"]!;
        var tokens = lp["tokens"]!.AsArray().Select(t => (string)t!).ToList();
        Assert.Equal(Scripts.RawContinuation, string.Concat(tokens));
        Assert.Equal(tokens.Count, lp["token_logprobs"]!.AsArray().Count);
        Assert.Equal(tokens.Count, lp["top_logprobs"]!.AsArray().Count);
        var offsets = lp["text_offset"]!.AsArray().Select(o => (int)o!).ToList();
        Assert.Equal(0, offsets[0]);
        for (int i = 1; i < offsets.Count; i++)
        {
            Assert.Equal(offsets[i - 1] + tokens[i - 1].Length, offsets[i]);
        }

        JsonObject top = lp["top_logprobs"]![0]!.AsObject();
        Assert.Equal(2, top.Count);
        Assert.True(top.ContainsKey(tokens[0]));
        Assert.True(top.ContainsKey("?"));
    }

    [Fact]
    public async Task CompletionsStream_ChunksUsageAndDone()
    {
        JsonObject body = Body(new JsonArray(Prompt, "Other"), stream: true);
        body["echo"] = true;
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        SseResult sse = await _server.StreamAsync("/v1/completions", body);
        Assert.True(sse.EndedWithDone);
        Assert.Equal(0, sse.EventsAfterDone);
        Assert.All(sse.Events, e => Assert.Equal("text_completion", (string)e["object"]!));
        Assert.Equal(Prompt + Scripts.RawContinuation, sse.Text(0));
        Assert.Equal("Other" + Scripts.RawContinuation, sse.Text(1));
        for (int c = 0; c < 2; c++)
        {
            var mine = sse.ChoicesOf(c).ToList();
            Assert.Single(mine, x => x["finish_reason"] is not null);
            Assert.Equal("stop", (string?)mine[^1]["finish_reason"]);
        }

        JsonNode usage = sse.Events[^1]["usage"]!;
        Assert.Empty(sse.Events[^1]["choices"]!.AsArray());
        Assert.Equal(ServerHarness.Tokenizer.Encode(Prompt).Length + ServerHarness.Tokenizer.Encode("Other").Length, (int)usage["prompt_tokens"]!);
    }

    [Fact]
    public async Task Models_ListsServedIdAndResolvesAliases()
    {
        JsonNode list = JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models"))!;
        Assert.Equal("list", (string)list["object"]!);
        JsonNode card = Assert.Single(list["data"]!.AsArray())!;
        Assert.Equal(ServerHarness.ModelName, (string)card["id"]!);
        Assert.Equal("model", (string)card["object"]!);
        Assert.Equal("qwen3sharp", (string)card["owned_by"]!);
        Assert.True((long)card["created"]! > 0);
        JsonNode byAlias = JsonNode.Parse(await _server.Http.GetStringAsync("/v1/models/" + ServerHarness.Alias))!;
        Assert.Equal(ServerHarness.ModelName, (string)byAlias["id"]!);
    }

    [Fact]
    public async Task Health_Ok()
    {
        HttpResponseMessage r = await _server.Http.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("ok", (string)JsonNode.Parse(await r.Content.ReadAsStringAsync())!["status"]!);
    }

    [Fact]
    public async Task Tokenize_Detokenize_RoundTrip()
    {
        const string text = "Hello world <|im_end|> ünïcode";
        JsonNode t = await _server.PostOkAsync("/tokenize", new JsonObject { ["content"] = text, ["add_special"] = true });
        int[] tokens = t["tokens"]!.AsArray().Select(x => (int)x!).ToArray();
        Assert.Equal(ServerHarness.Tokenizer.Encode(text), tokens);
        Assert.Contains(ServerHarness.Tokenizer.ImEnd!.Value, tokens);
        JsonNode d = await _server.PostOkAsync("/detokenize", new JsonObject { ["tokens"] = new JsonArray(tokens.Select(x => (JsonNode)x).ToArray()) });
        Assert.Equal(text, (string)d["content"]!);

        JsonNode p = await _server.PostOkAsync("/tokenize", new JsonObject { ["content"] = "Hello world", ["with_pieces"] = true });
        var pieces = p["tokens"]!.AsArray();
        Assert.Equal("Hello world", string.Concat(pieces.Select(x => (string)x!["piece"]!)));
        Assert.Equal(ServerHarness.Tokenizer.Encode("Hello world"), pieces.Select(x => (int)x!["id"]!));
    }

    [Fact]
    public async Task Tokenize_ParseSpecialFalse_SpecialTextIsPlainText()
    {
        JsonNode t = await _server.PostOkAsync("/tokenize", new JsonObject { ["content"] = "<|im_end|>", ["parse_special"] = false });
        int[] tokens = t["tokens"]!.AsArray().Select(x => (int)x!).ToArray();
        Assert.True(tokens.Length > 1);
        Assert.DoesNotContain(ServerHarness.Tokenizer.ImEnd!.Value, tokens);
        Assert.Equal("<|im_end|>", ServerHarness.Tokenizer.Decode(tokens));
    }

    [Theory]
    [InlineData("/models/Qwen3-1.7B", "Qwen3-1.7B")]
    [InlineData("/models/Qwen3-1.7B/", "Qwen3-1.7B")]
    [InlineData("/home/u/.cache/huggingface/hub/models--Qwen--Qwen3-1.7B/snapshots/0123abc", "Qwen3-1.7B")]
    public void ModelNameFromDirectory_FolderOrCacheRepoName(string directory, string expected) =>
        Assert.Equal(expected, Qwen3Sharp.Server.ServerOptions.ModelNameFromDirectory(directory));

    [Fact]
    public async Task ApplyTemplate_MatchesChatServiceRendering()
    {
        var messages = JsonNode.Parse("""[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]""")!.AsArray();
        JsonNode on = await _server.PostOkAsync("/apply-template", new JsonObject { ["messages"] = messages.DeepClone() });
        string expected = _server.Chat.Prepare(new ChatRequest { Messages = (JsonArray)messages.DeepClone() }).Prompt;
        Assert.Equal(expected, (string)on["prompt"]!);
        Assert.EndsWith("<|im_start|>assistant\n", expected);

        JsonNode off = await _server.PostOkAsync("/apply-template", new JsonObject
        {
            ["messages"] = messages.DeepClone(),
            ["chat_template_kwargs"] = new JsonObject { ["enable_thinking"] = false },
        });
        Assert.EndsWith("<think>\n\n</think>\n\n", (string)off["prompt"]!);

        JsonNode tools = await _server.PostOkAsync("/apply-template", new JsonObject
        {
            ["messages"] = messages.DeepClone(),
            ["tools"] = JsonNode.Parse("""[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]"""),
        });
        Assert.Contains("<tools>", (string)tools["prompt"]!);
        Assert.Contains("get_weather", (string)tools["prompt"]!);
    }
}
