using System.Security.Cryptography;
using Qwen3Sharp.Cache;
using Qwen3Sharp.Model;

namespace Qwen3Sharp.Tests.Model;

/// <summary>
/// The golden models loaded from directories in which every file is a symbolic link, as in a Hugging Face cache
/// snapshot: the logits must still be the reference's (a loader that measured the links would not even open them).
/// </summary>
public sealed class SymlinkedModelTests
{
    public static TheoryData<string, string> Layouts()
    {
        var data = new TheoryData<string, string>();
        foreach (string model in new[] { "tiny-a", "tiny-b" })   // tiny-b is sharded: index + 2 shards
        {
            foreach (string layout in new[] { "hf-cache-relative", "absolute", "chain-of-two" })
            {
                data.Add(model, layout);
            }
        }

        return data;
    }

    [Theory, MemberData(nameof(Layouts))]
    public void Load_EveryFileASymlink_GivesTheGoldenLogits(string model, string layout)
    {
        using var root = new TempDir();
        string directory = LinkModel(GoldenCase.Dir(model), root.Path, layout);
        Assert.All(Directory.EnumerateFileSystemEntries(directory), f => Assert.NotNull(new FileInfo(f).LinkTarget));

        GoldenCase c = GoldenCase.LoadAll(model)[0];
        using Qwen3Model m = Qwen3Model.Load(directory, threadCount: 1);
        using KvCache cache = m.CreateCache(512);
        var logits = new float[m.VocabSize];
        m.Forward(c.InputIds, 0, cache, logits);

        float worst = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(logits[i] - c.LastLogits[i]));
        }

        Assert.True(worst <= 2e-3f, $"{model} via {layout}: max |logit - reference| = {worst:E3}");
    }

    /// <summary>A directory whose entries are links to <paramref name="source"/>'s model files.</summary>
    private static string LinkModel(string source, string root, string layout)
    {
        string[] files = Directory.GetFiles(source).Where(f => Path.GetFileName(f) != "golden.json").ToArray();
        switch (layout)
        {
            case "hf-cache-relative":
            {
                // what huggingface_hub and `qwen3 pull` write: snapshots/{commit}/{file} -> ../../blobs/{sha256}
                string repo = Path.Combine(root, "models--Qwen--Golden");
                string snapshot = Path.Combine(repo, "snapshots", new string('a', 40));
                Directory.CreateDirectory(Path.Combine(repo, "blobs"));
                Directory.CreateDirectory(snapshot);
                foreach (string f in files)
                {
                    string sha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(f)));
                    File.Copy(f, Path.Combine(repo, "blobs", sha));
                    File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(f)), "../../blobs/" + sha);
                }

                return snapshot;
            }
            case "absolute":
            {
                string dir = Path.Combine(root, "absolute");
                Directory.CreateDirectory(dir);
                foreach (string f in files)
                {
                    File.CreateSymbolicLink(Path.Combine(dir, Path.GetFileName(f)), Path.GetFullPath(f));
                }

                return dir;
            }
            default:
            {
                // model/{file} -> ../middle/{file} (relative) -> the fixture (absolute)
                string middle = Path.Combine(root, "middle");
                string dir = Path.Combine(root, "model");
                Directory.CreateDirectory(middle);
                Directory.CreateDirectory(dir);
                foreach (string f in files)
                {
                    string name = Path.GetFileName(f);
                    File.CreateSymbolicLink(Path.Combine(middle, name), Path.GetFullPath(f));
                    File.CreateSymbolicLink(Path.Combine(dir, name), Path.Combine("..", "middle", name));
                }

                return dir;
            }
        }
    }
}
