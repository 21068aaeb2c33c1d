namespace Qwen3Sharp.Chat;

/// <summary>What went wrong in a chat template.</summary>
public enum ChatTemplateErrorKind
{
    /// <summary>The template source does not parse (reported with line and column).</summary>
    Syntax,

    /// <summary>Rendering failed: undefined operand, type error, unknown method, bad argument.</summary>
    Runtime,

    /// <summary>The template called <c>raise_exception(message)</c>; <see cref="ChatTemplateException.TemplateMessage"/> is its message.</summary>
    Raised,
}

/// <summary>A chat template failed to parse or render. Line and column are 1-based positions in the template source.</summary>
public sealed class ChatTemplateException : Exception
{
    public ChatTemplateException(ChatTemplateErrorKind kind, string templateMessage, int line, int column, Exception? inner = null)
        : base(Format(kind, templateMessage, line, column), inner)
    {
        Kind = kind;
        TemplateMessage = templateMessage;
        Line = line;
        Column = column;
    }

    public ChatTemplateErrorKind Kind { get; }

    /// <summary>The bare message (for <see cref="ChatTemplateErrorKind.Raised"/>, exactly what the template passed).</summary>
    public string TemplateMessage { get; }

    public int Line { get; }
    public int Column { get; }

    internal static ChatTemplateException Syntax(string message, int line, int column) =>
        new(ChatTemplateErrorKind.Syntax, message, line, column);

    private static string Format(ChatTemplateErrorKind kind, string message, int line, int column) => kind switch
    {
        ChatTemplateErrorKind.Syntax => $"Chat template syntax error at line {line}, column {column}: {message}",
        ChatTemplateErrorKind.Raised => $"Chat template raised an exception at line {line}: {message}",
        _ => $"Chat template error at line {line}, column {column}: {message}",
    };
}
