using System.Text.RegularExpressions;

namespace Qwen3Sharp.Hub;

/// <summary>
/// Picks the GGUF file of a quantization tag among a repository's files, as llama.cpp's <c>-hf repo:quant</c> and
/// Ollama's <c>hf.co/repo:quant</c> do: the tag matches a <c>.gguf</c> file whose name (without the extension and a
/// <c>-00001-of-00003</c> split suffix) ends in <c>-TAG</c>, <c>.TAG</c> or <c>_TAG</c>, or is the tag, ignoring case;
/// so <c>Q8_0</c> finds <c>Qwen3-1.7B-Q8_0.gguf</c> and <c>UD-Q4_K_XL</c> finds <c>Qwen3-1.7B-UD-Q4_K_XL.gguf</c>. Files
/// in sub-folders count (large quantizations are often split into a folder); multimodal projectors (<c>mmproj*</c>) never
/// do. A split file selects all its parts.
/// </summary>
public static partial class GgufQuantSelector
{
    /// <summary>
    /// The repository files to fetch for <paramref name="quant"/>, the first (the one to load) first. Throws
    /// <see cref="HubException"/> naming the tags on offer when none or more than one model matches.
    /// </summary>
    public static IReadOnlyList<string> Select(string repoId, IEnumerable<string> repoFiles, string quant)
    {
        List<GgufName> ggufs = Models(repoFiles);
        var groups = ggufs.Where(g => Matches(g.Stem, quant))
            .GroupBy(g => g.Folder + "/" + g.Stem, StringComparer.Ordinal)
            .ToList();
        if (groups.Count == 0)
        {
            throw new HubException(HubErrorKind.NotFound, ggufs.Count == 0
                ? $"{repoId} has no GGUF files, so ':{quant}' selects nothing; pull it without a tag if it is a transformers checkpoint."
                : $"{repoId} has no GGUF file for '{quant}'; it offers: {string.Join(", ", Offered(ggufs))}.", repoId);
        }

        if (groups.Count > 1)
        {
            throw new HubException(HubErrorKind.NotFound,
                $"'{quant}' matches several GGUF models in {repoId} ({string.Join(", ", groups.Select(g => g.First().Path))}); " +
                $"give the longer tag: {string.Join(", ", groups.Select(g => Tag(g.First().Stem)))}.", repoId);
        }

        List<GgufName> parts = groups[0].OrderBy(g => g.Path, StringComparer.Ordinal).ToList();
        if (parts[0].PartCount is int count)
        {
            int[] have = parts.Select(p => p.Part!.Value).ToArray();
            if (parts.Any(p => p.PartCount != count) || !have.SequenceEqual(Enumerable.Range(1, count)))
            {
                throw new HubException(HubErrorKind.NotFound,
                    $"{repoId}: the split GGUF for '{quant}' is incomplete in the repository ({string.Join(", ", parts.Select(p => p.Path))}).", repoId);
            }
        }

        return parts.Select(p => p.Path).ToList();
    }

    /// <summary>
    /// What a reference without a tag selects in a repository of GGUF files, as llama.cpp's <c>-hf repo</c> and Ollama's
    /// <c>hf.co/repo</c> do: the <c>Q4_K_M</c> model when offered, otherwise the first GGUF model by path; named by its
    /// whole file name (without a split suffix) so that it selects exactly that model. Null when there is no GGUF model.
    /// </summary>
    public static string? DefaultQuant(IEnumerable<string> repoFiles)
    {
        List<GgufName> ggufs = Models(repoFiles);
        if (ggufs.Count == 0)
        {
            return null;
        }

        GgufName first = ggufs.Where(g => Matches(g.Stem, DefaultTag)).MinBy(g => g.Path, StringComparer.Ordinal)
            ?? ggufs.MinBy(g => g.Path, StringComparer.Ordinal)!;
        return first.Stem;
    }

    /// <summary>The tag chosen when none is given and the repository offers it (llama.cpp's and Ollama's default).</summary>
    public const string DefaultTag = "Q4_K_M";

    /// <summary>The quantization tags a repository offers (the last '-'-separated part of each GGUF model name), for messages.</summary>
    public static IReadOnlyList<string> Offered(IEnumerable<string> repoFiles) => Offered(Models(repoFiles));

    /// <summary>True when the repository holds at least one GGUF model file.</summary>
    public static bool HasGguf(IEnumerable<string> repoFiles) => Models(repoFiles).Count > 0;

    private static IReadOnlyList<string> Offered(List<GgufName> ggufs) =>
        ggufs.Select(g => Tag(g.Stem)).Distinct(StringComparer.OrdinalIgnoreCase).Order(StringComparer.OrdinalIgnoreCase).ToList();

    private static string Tag(string stem)
    {
        int cut = stem.LastIndexOfAny(['-', '.']);
        return cut < 0 ? stem : stem[(cut + 1)..];
    }

    private static bool Matches(string stem, string quant) =>
        stem.Equals(quant, StringComparison.OrdinalIgnoreCase)
        || (stem.Length > quant.Length
            && stem.EndsWith(quant, StringComparison.OrdinalIgnoreCase)
            && stem[stem.Length - quant.Length - 1] is '-' or '.' or '_');

    private static List<GgufName> Models(IEnumerable<string> repoFiles)
    {
        var list = new List<GgufName>();
        foreach (string path in repoFiles)
        {
            int slash = path.LastIndexOf('/');
            string name = path[(slash + 1)..];
            string folder = slash < 0 ? "" : path[..slash];
            if (!name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) || name.StartsWith("mmproj", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            string stem = name[..^".gguf".Length];
            Match split = SplitSuffix().Match(stem);
            list.Add(split.Success
                ? new GgufName(path, folder, stem[..split.Index], int.Parse(split.Groups[1].Value), int.Parse(split.Groups[2].Value))
                : new GgufName(path, folder, stem, null, null));
        }

        return list;
    }

    private sealed record GgufName(string Path, string Folder, string Stem, int? Part, int? PartCount);

    /// <summary>llama.cpp's gguf-split naming: <c>NAME-00001-of-00003.gguf</c>.</summary>
    [GeneratedRegex(@"-(\d{5})-of-(\d{5})$")]
    private static partial Regex SplitSuffix();
}
