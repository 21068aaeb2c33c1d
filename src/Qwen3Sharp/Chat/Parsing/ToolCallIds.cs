using System.Security.Cryptography;

namespace Qwen3Sharp.Chat.Parsing;

/// <summary>Default tool-call id source: "call_" + 24 random alphanumerics (the shape OpenAI and vLLM use).</summary>
public static class ToolCallIds
{
    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    public static string NewId() => "call_" + RandomNumberGenerator.GetString(Alphabet, 24);
}
