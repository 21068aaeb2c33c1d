using System.Text.Json.Nodes;
using Qwen3Sharp.Chat;
using Qwen3Sharp.Chat.Jinja;

namespace Qwen3Sharp.Tests.Chat.Jinja;

/// <summary>
/// Table of small templates (one Jinja feature each) whose expected output was produced by Python Jinja2 3.1
/// configured as transformers configures it (tools/fixtures/chat/gen_jinja_cases.py).
/// </summary>
public class JinjaCasesTests
{
    private static readonly Lazy<JsonObject> Fixture = new(() =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "chat", "jinja-cases.json")))!);

    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var c in Fixture.Value["cases"]!.AsArray()) data.Add(c!["name"]!.GetValue<string>());
        return data;
    }

    private static KeyValuePair<string, JinjaValue>[] Variables() =>
        Fixture.Value["variables"]!.AsObject()
            .Select(kv => new KeyValuePair<string, JinjaValue>(kv.Key, JinjaJson.FromNode(kv.Value)))
            .ToArray();

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Render_PythonJinjaCase_MatchesPythonOutput(string name)
    {
        var c = Fixture.Value["cases"]!.AsArray().Single(x => x!["name"]!.GetValue<string>() == name)!;
        string source = c["template"]!.GetValue<string>();
        if (c["expected"] is { } expected)
        {
            string actual = JinjaTemplate.Parse(source).Render(Variables(), FixedTimeProvider.Instance);
            Assert.Equal(expected.GetValue<string>(), actual);
            return;
        }

        string pythonError = c["error"]!.GetValue<string>();
        var ex = Assert.Throws<ChatTemplateException>(() => JinjaTemplate.Parse(source).Render(Variables(), FixedTimeProvider.Instance));
        var expectedKind = pythonError switch
        {
            "TemplateSyntaxError" or "TemplateAssertionError" => ChatTemplateErrorKind.Syntax,
            "TemplateError" => ChatTemplateErrorKind.Raised,
            _ => ChatTemplateErrorKind.Runtime,
        };
        Assert.Equal(expectedKind, ex.Kind);
        // Fuzz cases check the failure kind; hand-written cases also pin Python's exact message.
        if (!name.Contains("_fuzz_", StringComparison.Ordinal))
            Assert.Equal(c["message"]!.GetValue<string>(), ex.TemplateMessage);
        Assert.True(ex.Line >= 1 && ex.Column >= 1, $"position {ex.Line}:{ex.Column}");
    }
}
