namespace Qwen3Sharp.Loading;

/// <summary>
/// The one place that asks the file system about a model file (weights, JSON, tokenizer, template, GGUF). Every
/// question follows symbolic links to the final target: in a Hugging Face cache snapshot every file is a relative
/// link into <c>blobs/</c>, and <c>new FileInfo(link).Length</c> or <c>File.Exists(link)</c> answer about the link
/// itself (the length of its text; "exists" for a dangling link). A dangling link, a link loop, or a link to a
/// directory where a file is expected is a <see cref="ModelFormatException"/> that names the path and its target.
/// </summary>
public static class ModelFile
{
    /// <summary>
    /// The full path of the regular file that <paramref name="path"/> is or leads to through any chain of links.
    /// </summary>
    /// <exception cref="ModelFormatException">Nothing at the path, a dangling link, a link loop, or a directory.</exception>
    public static string Resolve(string path)
        => TryResolve(path) ?? throw new ModelFormatException(path, null, "file not found");

    /// <summary>
    /// As <see cref="Resolve"/>, but null when nothing at all is at <paramref name="path"/> (for optional files such
    /// as generation_config.json). A link that leads nowhere is still an error: the file was meant to be there.
    /// </summary>
    /// <exception cref="ModelFormatException">A dangling link, a link loop, or a directory.</exception>
    public static string? TryResolve(string path)
    {
        FileSystemInfo? final;
        try
        {
            final = File.ResolveLinkTarget(path, returnFinalTarget: true);
        }
        catch (FileNotFoundException)
        {
            return null;  // no entry at the path (not even a link)
        }
        catch (DirectoryNotFoundException)
        {
            return null;  // a parent directory is missing
        }
        catch (IOException e)
        {
            // .NET follows at most 40 links, as the kernel does: a loop ends here
            throw new ModelFormatException(path, null,
                $"is a symbolic link to '{LinkText(path)}' that never reaches a file (a link loop?): {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ModelFormatException(path, null, $"cannot be read: {e.Message}", e);
        }

        if (final is null)
        {
            // not a link (though a parent directory may be one: the OS follows those)
            string full = Path.GetFullPath(path);
            if (Directory.Exists(full))
            {
                throw new ModelFormatException(path, null, "is a directory, where a file is expected");
            }

            return File.Exists(full) ? full : null;
        }

        string target = final.FullName;
        string via = LinkText(path) is { } text && text != target ? $"'{text}' (finally {target})" : $"'{target}'";
        if (Directory.Exists(target))
        {
            throw new ModelFormatException(path, null, $"is a symbolic link to {via}, which is a directory, where a file is expected");
        }

        if (!File.Exists(target))
        {
            throw new ModelFormatException(path, null,
                $"is a symbolic link to {via}, which does not exist (a dangling link: its target was deleted or moved; " +
                "for a Hugging Face cache snapshot, pull the model again)");
        }

        return target;
    }

    /// <summary>True when <paramref name="path"/> is or leads to a regular file; false for nothing, a dangling link,
    /// a loop or a directory. Never throws: for checks such as "is this cached snapshot complete?".</summary>
    public static bool IsFile(string path)
    {
        try
        {
            return TryResolve(path) is not null;
        }
        catch (ModelFormatException)
        {
            return false;
        }
    }

    /// <summary>The byte length of the file <paramref name="path"/> leads to (not of a link's text).</summary>
    /// <exception cref="ModelFormatException">As <see cref="Resolve"/>.</exception>
    public static long Length(string path) => new FileInfo(Resolve(path)).Length;

    /// <summary>
    /// The entries of <paramref name="directory"/> matching <paramref name="searchPattern"/> that are or lead to
    /// files, links included (listing alone would also return dangling links), in ordinal order.
    /// </summary>
    public static IEnumerable<string> EnumerateFiles(string directory, string searchPattern)
        => Directory.EnumerateFiles(directory, searchPattern).Where(IsFile).Order(StringComparer.Ordinal);

    private static string? LinkText(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
