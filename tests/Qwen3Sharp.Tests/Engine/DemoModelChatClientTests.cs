using Microsoft.Extensions.AI;
using Qwen3Sharp.Engine;
using Qwen3Sharp.Tensors;
using Qwen3Sharp.Tests.TestModels;
using ChatFinishReason = Microsoft.Extensions.AI.ChatFinishReason;

namespace Qwen3Sharp.Tests.Engine;

/// <summary>
/// The .NET API as an application wires it, in-process: the embedded demo model behind <see cref="Qwen3Host.AsChatClient"/>,
/// Microsoft.Extensions.AI's function-invocation middleware running a C# function for the model's tool call and sending
/// the result back, the model answering from it; greedy, so the exchange is exact.
/// </summary>
public sealed class DemoModelChatClientTests : IDisposable
{
    private readonly DemoModelHost _demo = new(maxSequences: 4);

    private Qwen3Host Host => _demo.Host;

    public void Dispose() => _demo.Dispose();

    [Fact]
    public void HostDefaults_AreTheCommandsDefaults_WeightsCopiedIntoTheDecodeLayout()
    {
        // Qwen3Host.Load without a placement copies, as `qwen3 serve` (--weights copy) does; before, in-process users
        // got the mapped rows: the slower decode and, for float models, no batch invariance by default.
        Assert.Equal(Qwen3Sharp.Loading.WeightPlacement.Copy, Host.Model.Weights.Placement);
        Assert.Equal(Qwen3Sharp.Kernels.KernelSelection.FloatLayout == Qwen3Sharp.Kernels.QuantLayout.Interleaved8,
            Host.Model.Weights.Layers[0].QProj.DType.IsFloatGroups());
    }

    [Fact]
    public async Task FunctionInvocation_InProcess_CallsTheToolWithTheCity_AndAnswersFromItsResult()
    {
        var calls = new List<string>();
        AIFunction weather = DemoWeatherTool.Create(calls);
        IChatClient chat = Host.AsChatClient("demo").AsBuilder().UseFunctionInvocation().Build();
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 200, Tools = [weather] };

        ChatResponse response = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, "What's the weather in Paris?")], options);

        Assert.Equal(["Paris"], calls);
        // the call, its result, then the answer, as three messages; the reasoning stays out of the text
        Assert.Contains(response.Messages, m => m.Contents.OfType<FunctionCallContent>().Any(c => c.Name == "get_weather"));
        Assert.Contains(response.Messages, m => m.Contents.OfType<FunctionResultContent>().Any());
        Assert.EndsWith("In Paris it is sunny and 21°C.", response.Text);
        Assert.DoesNotContain("<think>", response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);

        // streamed: the same loop over the streaming API
        calls.Clear();
        var text = new System.Text.StringBuilder();
        await foreach (ChatResponseUpdate u in chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "What's the weather in Paris?")], options))
        {
            text.Append(u.Text);
        }

        Assert.Equal(["Paris"], calls);
        Assert.EndsWith("In Paris it is sunny and 21°C.", text.ToString());
    }
}
