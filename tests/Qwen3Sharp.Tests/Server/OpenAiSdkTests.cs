#pragma warning disable OPENAI001 // seed and reasoning effort are marked experimental in the SDK
using System.ClientModel;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using AIChatRole = Microsoft.Extensions.AI.ChatRole;
using OpenAIChatMessage = OpenAI.Chat.ChatMessage;

namespace Qwen3Sharp.Tests.Server;

/// <summary>The server driven by the official OpenAI .NET SDK and by Microsoft.Extensions.AI over it.</summary>
public sealed class OpenAiSdkTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private readonly ServerHarness _server = fixture.Server;

    private OpenAIClientOptions Options => new() { Endpoint = new Uri(_server.BaseAddress, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(30) };

    private ChatClient Client(string model = ServerHarness.ModelName) => new(model, new ApiKeyCredential("not-checked"), Options);

    private static ChatTool WeatherTool() => ChatTool.CreateFunctionTool("get_weather", "Current weather in a city",
        BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"""));

    [Fact]
    public async Task Sdk_CompleteChat_ThinkingOn_ContentAndRawReasoning()
    {
        ClientResult<ChatCompletion> result = await Client().CompleteChatAsync([new UserChatMessage("Hi")]);
        ChatCompletion completion = result.Value;
        Assert.Equal(Scripts.Answer, completion.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(ServerHarness.ModelName, completion.Model);
        Assert.True(completion.Usage.OutputTokenDetails.ReasoningTokenCount > 0);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
        JsonNode raw = JsonNode.Parse(result.GetRawResponse().Content.ToString())!;
        Assert.Equal(Scripts.Reasoning, ((string)raw["choices"]![0]!["message"]!["reasoning_content"]!).Trim());
    }

    [Fact]
    public async Task Sdk_CompleteChat_ReasoningEffortNone_NoReasoningTokens()
    {
        var options = new ChatCompletionOptions { ReasoningEffortLevel = ChatReasoningEffortLevel.None };
        ChatCompletion completion = (await Client().CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Hi")], options)).Value;
        Assert.Equal(Scripts.Answer, completion.Content[0].Text);
        Assert.Equal(0, completion.Usage.OutputTokenDetails.ReasoningTokenCount);
    }

    [Fact]
    public async Task Sdk_Streaming_ContentUpdatesFinishAndUsage()
    {
        var text = new System.Text.StringBuilder();
        OpenAI.Chat.ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        int updates = 0;
        await foreach (StreamingChatCompletionUpdate u in Client().CompleteChatStreamingAsync([new UserChatMessage("count please")],
                           new ChatCompletionOptions { ReasoningEffortLevel = ChatReasoningEffortLevel.None }))
        {
            updates++;
            foreach (ChatMessageContentPart part in u.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= u.FinishReason;
            usage ??= u.Usage;
        }

        Assert.Equal(Scripts.Counting, text.ToString());
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, finish);
        Assert.True(updates > 5);
        Assert.NotNull(usage);
        Assert.Equal(ServerHarness.Tokenizer.Encode(Scripts.Counting).Length + 1, usage!.OutputTokenCount);
    }

    [Fact]
    public async Task Sdk_Tools_ToolCallsParsedAndStreamed()
    {
        var options = new ChatCompletionOptions { Tools = { WeatherTool() } };
        ChatCompletion completion = (await Client().CompleteChatAsync([new UserChatMessage("What is the weather in Paris?")], options)).Value;
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, completion.FinishReason);
        ChatToolCall call = Assert.Single(completion.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.Equal("Paris", (string)JsonNode.Parse(call.FunctionArguments.ToString())!["city"]!);

        var arguments = new System.Text.StringBuilder();
        string? name = null, id = null;
        OpenAI.Chat.ChatFinishReason? finish = null;
        await foreach (StreamingChatCompletionUpdate u in Client().CompleteChatStreamingAsync([new UserChatMessage("What is the weather in Paris?")], options))
        {
            foreach (StreamingChatToolCallUpdate t in u.ToolCallUpdates)
            {
                Assert.Equal(0, t.Index);
                name ??= t.FunctionName;
                id ??= t.ToolCallId;
                arguments.Append(t.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= u.FinishReason;
        }

        Assert.Equal("get_weather", name);
        Assert.False(string.IsNullOrEmpty(id));
        Assert.Equal("Paris", (string)JsonNode.Parse(arguments.ToString())!["city"]!);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.ToolCalls, finish);
    }

    [Fact]
    public async Task Sdk_ToolResultRoundTrip_Answers()
    {
        var options = new ChatCompletionOptions { Tools = { WeatherTool() } };
        List<OpenAIChatMessage> messages = [new UserChatMessage("What is the weather in Paris?")];
        ChatCompletion first = (await Client().CompleteChatAsync(messages, options)).Value;
        messages.Add(new AssistantChatMessage(first));
        messages.Add(new ToolChatMessage(first.ToolCalls[0].Id, "sunny"));
        messages.Add(new UserChatMessage("thanks"));
        ChatCompletion second = (await Client().CompleteChatAsync(messages, options)).Value;
        Assert.Equal(Scripts.Answer, second.Content[0].Text);
    }

    [Fact]
    public async Task Sdk_StopMaxTokensSeedLogprobs_Honoured()
    {
        var stop = new ChatCompletionOptions { ReasoningEffortLevel = ChatReasoningEffortLevel.None, StopSequences = { "five" } };
        ChatCompletion stopped = (await Client().CompleteChatAsync([new UserChatMessage("count please")], stop)).Value;
        Assert.Equal(" one two three four ", stopped.Content[0].Text);

        var max = new ChatCompletionOptions { ReasoningEffortLevel = ChatReasoningEffortLevel.None, MaxOutputTokenCount = 2 };
        ChatCompletion cut = (await Client().CompleteChatAsync([new UserChatMessage("count please")], max)).Value;
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Length, cut.FinishReason);
        Assert.Equal(" one two", cut.Content[0].Text);

        var seeded = new ChatCompletionOptions { ReasoningEffortLevel = ChatReasoningEffortLevel.None, Seed = 99, Temperature = 1f };
        string a = (await Client().CompleteChatAsync([new UserChatMessage("roll the dice")], seeded)).Value.Content[0].Text;
        string b = (await Client().CompleteChatAsync([new UserChatMessage("roll the dice")], seeded)).Value.Content[0].Text;
        Assert.Equal(a, b);

        var logprobs = new ChatCompletionOptions
        {
            ReasoningEffortLevel = ChatReasoningEffortLevel.None,
            IncludeLogProbabilities = true,
            TopLogProbabilityCount = 3,
        };
        ChatCompletion withLogprobs = (await Client().CompleteChatAsync([new UserChatMessage("Hi")], logprobs)).Value;
        Assert.Equal(Scripts.Answer, string.Concat(withLogprobs.ContentTokenLogProbabilities.Select(t => t.Token)));
        Assert.All(withLogprobs.ContentTokenLogProbabilities, t => Assert.Equal(3, t.TopLogProbabilities.Count));
    }

    [Fact]
    public async Task Sdk_Errors_SurfaceAsClientResultException()
    {
        var bad = await Assert.ThrowsAsync<ClientResultException>(() =>
            Client().CompleteChatAsync([new UserChatMessage("Hi")], new ChatCompletionOptions { Temperature = 5f }));
        Assert.Equal(400, bad.Status);
        Assert.Contains("temperature", bad.Message);

        var missing = await Assert.ThrowsAsync<ClientResultException>(() => Client("gpt-4o").CompleteChatAsync([new UserChatMessage("Hi")]));
        Assert.Equal(404, missing.Status);
        Assert.Contains("model_not_found", missing.Message);

        var json = await Assert.ThrowsAsync<ClientResultException>(() => Client().CompleteChatAsync([new UserChatMessage("Hi")],
            new ChatCompletionOptions { ResponseFormat = OpenAI.Chat.ChatResponseFormat.CreateJsonSchemaFormat("x",
                BinaryData.FromString("""{"$ref":"#/$defs/missing"}""")) }));
        Assert.Equal(400, json.Status);
        Assert.Contains("#/$defs/missing", json.Message);
    }

    [Fact]
    public async Task Sdk_Models_ListAndGet()
    {
        var models = new OpenAIModelClient(new ApiKeyCredential("x"), Options);
        OpenAIModelCollection list = (await models.GetModelsAsync()).Value;
        OpenAIModel model = Assert.Single(list);
        Assert.Equal(ServerHarness.ModelName, model.Id);
        Assert.Equal("qwen3sharp", model.OwnedBy);
        Assert.Equal(ServerHarness.ModelName, (await models.GetModelAsync(ServerHarness.Alias)).Value.Id);
    }

    [Fact]
    public async Task Sdk_EightConcurrentStreams_AllComplete()
    {
        ChatClient client = Client();
        string[] texts = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            var text = new System.Text.StringBuilder();
            await foreach (StreamingChatCompletionUpdate u in client.CompleteChatStreamingAsync([new UserChatMessage(i % 2 == 0 ? "Hi" : "count please")]))
            {
                foreach (ChatMessageContentPart part in u.ContentUpdate)
                {
                    text.Append(part.Text);
                }
            }

            return text.ToString();
        }));
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(i % 2 == 0 ? Scripts.Answer : Scripts.Counting, texts[i]);
        }

        await _server.WaitForIdleAsync();
    }

    [Fact]
    public async Task ExtensionsAI_ResponseStreamingAndFunctionCall()
    {
        IChatClient chat = Client().AsIChatClient();
        ChatResponse response = await chat.GetResponseAsync("Hi");
        Assert.Equal(Scripts.Answer, response.Text);
        Assert.Equal(Microsoft.Extensions.AI.ChatFinishReason.Stop, response.FinishReason);

        var streamed = new System.Text.StringBuilder();
        await foreach (ChatResponseUpdate u in chat.GetStreamingResponseAsync("count please"))
        {
            streamed.Append(u.Text);
        }

        Assert.Equal(Scripts.Counting, streamed.ToString());

        var options = new ChatOptions
        {
            Tools = [AIFunctionFactory.Create((string city) => "sunny", "get_weather", "Current weather in a city")],
        };
        ChatResponse withTool = await chat.GetResponseAsync([new AIChatMessage(AIChatRole.User, "What is the weather in Paris?")], options);
        FunctionCallContent call = Assert.Single(withTool.Messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>());
        Assert.Equal("get_weather", call.Name);
        Assert.Equal("Paris", call.Arguments!["city"]?.ToString());
    }
}
