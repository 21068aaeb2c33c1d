namespace Qwen3Sharp.Engine;

/// <summary>A request the engine cannot take as it is (prompt longer than the context, bad parameters).</summary>
public sealed class GenerationRequestException(string message, string? param = null) : Exception(message)
{
    /// <summary>The request field at fault, when one is (OpenAI's error.param).</summary>
    public string? Param { get; } = param;
}

/// <summary>The waiting queue is full; try again later.</summary>
public sealed class EngineOverloadedException(string message) : Exception(message);
