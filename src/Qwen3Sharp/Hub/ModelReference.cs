using System.Text.RegularExpressions;

namespace Qwen3Sharp.Hub;

/// <summary>
/// A hub model id with a revision and, for GGUF repositories, the quantization to fetch: <c>Qwen/Qwen3-1.7B</c>,
/// <c>Qwen/Qwen3-1.7B@main</c>, <c>Qwen/Qwen3-1.7B-GGUF:Q8_0</c> (llama.cpp's <c>-hf repo:quant</c> convention; see
/// <see cref="GgufQuantSelector"/>), <c>Qwen/Qwen3-1.7B-GGUF:Q8_0@main</c>.
/// </summary>
/// <param name="Quant">The GGUF quantization tag (Q8_0, Q4_K_M, BF16 ...), or null for a transformers checkpoint.</param>
public readonly partial record struct ModelReference(string RepoId, string Revision, string? Quant = null)
{
    public const string DefaultRevision = "main";

    /// <summary>
    /// Parses <c>ORG/NAME[:QUANT][@REVISION]</c>; false when <paramref name="text"/> is not a hub id. A colon cannot be part
    /// of a repository id or of a git ref, so the forms do not overlap.
    /// </summary>
    public static bool TryParse(string text, out ModelReference reference)
    {
        reference = default;
        int at = text.IndexOf('@');
        string repo = at < 0 ? text : text[..at];
        string revision = at < 0 ? DefaultRevision : text[(at + 1)..];
        int colon = repo.IndexOf(':');
        string repoId = colon < 0 ? repo : repo[..colon];
        string? quant = colon < 0 ? null : repo[(colon + 1)..];
        if (!IsValidRepoId(repoId) || !IsValidRevision(revision) || revision.Contains(':')) return false;
        if (quant is not null && !QuantTag().IsMatch(quant)) return false;
        reference = new ModelReference(repoId, revision, quant);
        return true;
    }

    /// <summary>Parses like <see cref="TryParse"/> and throws <see cref="HubException"/> with the accepted forms.</summary>
    public static ModelReference Parse(string text) =>
        TryParse(text, out ModelReference r)
            ? r
            : throw new HubException(HubErrorKind.InvalidReference,
                $"'{text}' is not a hub model id: expected ORG/NAME, ORG/NAME@REVISION or ORG/NAME-GGUF:QUANT, e.g. Qwen/Qwen3-1.7B or Qwen/Qwen3-1.7B-GGUF:Q8_0.");

    /// <summary>huggingface_hub's validate_repo_id: [\w.-], at most 96 chars, no '--' or '..', not starting or ending with '-' or '.'.</summary>
    public static bool IsValidRepoId(string repoId)
    {
        if (repoId.Length is 0 or > 96 + 1 + 96) return false;
        int slash = repoId.IndexOf('/');
        if (slash <= 0 || slash != repoId.LastIndexOf('/')) return false;
        return IsValidPart(repoId[..slash]) && IsValidPart(repoId[(slash + 1)..]);

        static bool IsValidPart(string part) =>
            part.Length is > 0 and <= 96 && RepoPart().IsMatch(part)
            && !part.Contains("--", StringComparison.Ordinal) && !part.Contains("..", StringComparison.Ordinal)
            && part[0] is not ('-' or '.') && part[^1] is not ('-' or '.');
    }

    /// <summary>A branch, tag or commit: no whitespace, no '..', no leading '/', no backslash.</summary>
    public static bool IsValidRevision(string revision) =>
        revision.Length is > 0 and <= 255 && !revision.Any(char.IsWhiteSpace) && !revision.Contains("..", StringComparison.Ordinal)
        && revision[0] != '/' && revision[^1] != '/' && !revision.Contains('\\');

    /// <summary>True for a full 40-hex commit sha, which the cache addresses directly without a ref file.</summary>
    public static bool IsCommitHash(string revision) => CommitHash().IsMatch(revision);

    public override string ToString() =>
        (Quant is null ? RepoId : $"{RepoId}:{Quant}") + (Revision == DefaultRevision ? "" : $"@{Revision}");

    /// <summary>A quantization tag as file names spell it: letters, digits, '_' and '-' (Q8_0, Q4_K_M, UD-Q4_K_XL, BF16).</summary>
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_\-]{0,31}$")]
    private static partial Regex QuantTag();

    [GeneratedRegex(@"^[A-Za-z0-9_.\-]+$")]
    private static partial Regex RepoPart();

    [GeneratedRegex(@"^[0-9a-f]{40}$")]
    private static partial Regex CommitHash();
}
