using System.Text.RegularExpressions;

namespace Qwen3Sharp.Hub;

/// <summary>A hub model id with a revision: <c>Qwen/Qwen3-1.7B</c> or <c>Qwen/Qwen3-1.7B@main</c>.</summary>
public readonly partial record struct ModelReference(string RepoId, string Revision)
{
    public const string DefaultRevision = "main";

    /// <summary>Parses <c>ORG/NAME</c> or <c>ORG/NAME@REVISION</c>; false when <paramref name="text"/> is not a hub id.</summary>
    public static bool TryParse(string text, out ModelReference reference)
    {
        reference = default;
        int at = text.IndexOf('@');
        string repoId = at < 0 ? text : text[..at];
        string revision = at < 0 ? DefaultRevision : text[(at + 1)..];
        if (!IsValidRepoId(repoId) || !IsValidRevision(revision)) return false;
        reference = new ModelReference(repoId, revision);
        return true;
    }

    /// <summary>Parses like <see cref="TryParse"/> and throws <see cref="HubException"/> with the accepted forms.</summary>
    public static ModelReference Parse(string text) =>
        TryParse(text, out ModelReference r)
            ? r
            : throw new HubException(HubErrorKind.InvalidReference,
                $"'{text}' is not a hub model id: expected ORG/NAME or ORG/NAME@REVISION, e.g. Qwen/Qwen3-1.7B.");

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

    public override string ToString() => Revision == DefaultRevision ? RepoId : $"{RepoId}@{Revision}";

    [GeneratedRegex(@"^[A-Za-z0-9_.\-]+$")]
    private static partial Regex RepoPart();

    [GeneratedRegex(@"^[0-9a-f]{40}$")]
    private static partial Regex CommitHash();
}
