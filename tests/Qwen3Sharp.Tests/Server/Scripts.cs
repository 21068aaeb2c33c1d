namespace Qwen3Sharp.Tests.Server;

/// <summary>What the scripted model answers, chosen from the rendered prompt as a model would "read" it.</summary>
internal static class Scripts
{
    public const string Reasoning = "hm";
    public const string Answer = "Hello there";
    public const string Counting = " one two three four five six seven eight nine ten";
    /// <summary>Rare characters the vocabulary has no whole token for: their UTF-8 bytes are split across tokens.</summary>
    public const string SplitCharacters = "clef 𝄞, ogham ᚛ᚁᚂ᚜, cuneiform 𒀀 end";
    public const string RawContinuation = " forty two, as always.";
    public const string WeatherCall = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    public const string TwoCalls = WeatherCall + "\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>";

    public static Script Choose(string prompt)
    {
        var tokenizer = ServerHarness.Tokenizer;
        Script Text(string text) => new Script.Tokens(tokenizer.Encode(text));

        int userAt = prompt.LastIndexOf("<|im_start|>user\n", StringComparison.Ordinal);
        if (userAt < 0)
        {
            return prompt.Contains("boom", StringComparison.Ordinal) ? new Script.Fail(0) : Text(RawContinuation);  // raw completion
        }

        string user = prompt[userAt..];
        bool thinkingClosed = prompt.EndsWith("</think>\n\n", StringComparison.Ordinal);
        string body = user switch
        {
            _ when user.Contains("boom", StringComparison.Ordinal) => "",
            _ when user.Contains("dice", StringComparison.Ordinal) => "",
            _ when user.Contains("weather", StringComparison.Ordinal) && prompt.Contains("<tools>", StringComparison.Ordinal)
                => user.Contains("two cities", StringComparison.Ordinal) ? TwoCalls : WeatherCall,
            _ when user.Contains("count", StringComparison.Ordinal) => Counting,
            _ when user.Contains("rare characters", StringComparison.Ordinal) => SplitCharacters,
            _ when user.Contains("forever", StringComparison.Ordinal) => string.Concat(Enumerable.Repeat(" la", 3000)),
            _ => Answer,
        };
        if (user.Contains("boom", StringComparison.Ordinal))
        {
            return new Script.Fail(user.Contains("later", StringComparison.Ordinal) ? 3 : 0);
        }

        if (user.Contains("dice", StringComparison.Ordinal))
        {
            return new Script.RandomDigits(8);
        }

        return Text(thinkingClosed ? body : $"<think>\n{Reasoning}\n</think>\n\n{body}");
    }
}
