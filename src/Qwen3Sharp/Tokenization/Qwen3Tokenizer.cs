using System.Buffers;
using System.Text;
using System.Text.Json;
using Qwen3Sharp.Loading;

namespace Qwen3Sharp.Tokenization;

/// <summary>
/// The Qwen3 tokenizer, identical to Hugging Face's: added tokens matched in the raw text (longest first), NFC,
/// the Qwen2/Qwen3 Split pre-tokenizer, byte-level BPE; decoding maps tokens back to bytes and replaces invalid
/// UTF-8 with U+FFFD. Immutable after loading and safe to share between threads.
/// </summary>
/// <remarks>
/// The reference is transformers.js (tests/.../Fixtures/tokenizer, tools/fixtures/tokenizer). Where it and the Rust
/// tokenizers could differ, this follows transformers.js: lone surrogates encode as U+FFFD's bytes (Python cannot
/// even pass them), added tokens' single_word flag is ignored, the contraction alternative folds ASCII case only,
/// and Unicode classes and NFC come from the reference's Unicode version (UnicodeTables.g.cs), not the runtime's.
/// </remarks>
public sealed class Qwen3Tokenizer
{
    private const string TokenizerFile = "tokenizer.json";
    private const string ConfigFile = "tokenizer_config.json";

    private readonly Dictionary<string, int> _vocab;       // byte-level vocab tokens
    private readonly Dictionary<string, int> _addedToId;   // added tokens' text
    private readonly string?[] _idToToken;                 // [VocabSize]
    private readonly TokenKind[] _kinds;                   // [VocabSize]
    private readonly int[] _byteOffsets;                   // [VocabSize + 1]: token id -> range in _bytes
    private readonly byte[] _bytes;                        // decoded bytes of every vocab token, back to back
    private readonly AddedToken?[] _addedById;             // [VocabSize]
    private readonly AddedTokenMatcher _rawAddedTokens;
    private readonly AddedTokenMatcher _normalizedAddedTokens;
    private readonly ByteLevelBpe _bpe;
    private readonly bool _nfc;

    internal enum TokenKind : byte { Unknown, Bytes, Added, Special }

    private Qwen3Tokenizer(
        Dictionary<string, int> vocab, Dictionary<string, int> addedToId, string?[] idToToken, TokenKind[] kinds, int[] byteOffsets, byte[] bytes,
        AddedToken?[] addedById, IReadOnlyList<AddedToken> addedTokens, ByteLevelBpe bpe, bool nfc, int? eos, int? pad)
    {
        _vocab = vocab;
        _addedToId = addedToId;
        _idToToken = idToToken;
        _kinds = kinds;
        _byteOffsets = byteOffsets;
        _bytes = bytes;
        _addedById = addedById;
        _bpe = bpe;
        _nfc = nfc;
        AddedTokens = addedTokens;
        _rawAddedTokens = new AddedTokenMatcher(addedTokens.Where(t => !t.Normalized || !nfc), t => t.Content);
        _normalizedAddedTokens = new AddedTokenMatcher(addedTokens.Where(t => t.Normalized && nfc), t => Nfc.Normalize(t.Content));
        EosTokenId = eos;
        PadTokenId = pad;
        EndOfText = AddedId("<|endoftext|>");
        ImStart = AddedId("<|im_start|>");
        ImEnd = AddedId("<|im_end|>");
        ThinkStart = AddedId("<think>");
        ThinkEnd = AddedId("</think>");
        ToolCallStart = AddedId("<tool_call>");
        ToolCallEnd = AddedId("</tool_call>");
        MaxDecodedCharsPerToken = Math.Max(
            Enumerable.Range(0, kinds.Length).Max(id => byteOffsets[id + 1] - byteOffsets[id]),
            addedTokens.Count == 0 ? 0 : addedTokens.Max(t => t.Content.Length));
    }

    /// <summary>Highest token id + 1, added tokens included (151,669 for Qwen3).</summary>
    public int VocabSize => _kinds.Length;

    public IReadOnlyList<AddedToken> AddedTokens { get; }

    public int? EndOfText { get; }
    public int? ImStart { get; }
    public int? ImEnd { get; }
    public int? ThinkStart { get; }
    public int? ThinkEnd { get; }
    public int? ToolCallStart { get; }
    public int? ToolCallEnd { get; }

    /// <summary>tokenizer_config.json's eos_token (Qwen3: &lt;|im_end|&gt;), null without a config or token.</summary>
    public int? EosTokenId { get; }

    /// <summary>tokenizer_config.json's pad_token (Qwen3: &lt;|endoftext|&gt;).</summary>
    public int? PadTokenId { get; }

    /// <summary>Upper bound of the chars one token decodes to (bytes of the longest token, or an added token's text).</summary>
    public int MaxDecodedCharsPerToken { get; }

    private int? AddedId(string content) => _addedToId.TryGetValue(content, out int id) ? id : null;

    // ---------------------------------------------------------------- loading

    /// <summary>Loads tokenizer.json and, when present, tokenizer_config.json from a model directory.</summary>
    public static Qwen3Tokenizer Load(string modelDirectory)
    {
        string tokenizerPath = Path.Combine(modelDirectory, TokenizerFile);
        if (ModelFile.TryResolve(tokenizerPath) is null)
            throw new TokenizerFormatException(tokenizerPath, "file not found");
        string configPath = Path.Combine(modelDirectory, ConfigFile);
        byte[] tokenizerJson = File.ReadAllBytes(tokenizerPath);
        byte[]? configJson = ModelFile.TryResolve(configPath) is not null ? File.ReadAllBytes(configPath) : null;
        return Parse(tokenizerJson, configJson, tokenizerPath, configPath);
    }

    /// <summary>Builds a tokenizer from the text of tokenizer.json and (optionally) tokenizer_config.json.</summary>
    public static Qwen3Tokenizer FromJson(string tokenizerJson, string? tokenizerConfigJson = null) =>
        Parse(Encoding.UTF8.GetBytes(tokenizerJson), tokenizerConfigJson is null ? null : Encoding.UTF8.GetBytes(tokenizerConfigJson),
            TokenizerFile, ConfigFile);

    private static Qwen3Tokenizer Parse(byte[] tokenizerJson, byte[]? configJson, string file, string configFile)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(tokenizerJson);
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException(file, "not valid JSON: " + e.Message, e);
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            bool nfc = ReadNormalizer(root, file);
            ValidatePreTokenizer(root, file);
            ValidateDecoder(root, file);

            JsonElement model = Required(root, "model", JsonValueKind.Object, file, "");
            string modelType = Required(model, "type", JsonValueKind.String, file, "model.").GetString()!;
            if (modelType != "BPE") throw new TokenizerFormatException(file, $"model.type is '{modelType}'; only BPE is supported");
            if (model.TryGetProperty("ignore_merges", out JsonElement ignoreMerges) && ignoreMerges.ValueKind == JsonValueKind.True)
                throw new TokenizerFormatException(file, "model.ignore_merges = true is not supported");
            if (model.TryGetProperty("byte_fallback", out JsonElement byteFallback) && byteFallback.ValueKind == JsonValueKind.True)
                throw new TokenizerFormatException(file, "model.byte_fallback = true is not supported");

            var vocab = new Dictionary<string, int>(160_000, StringComparer.Ordinal);
            int maxId = -1;
            foreach (JsonProperty entry in Required(model, "vocab", JsonValueKind.Object, file, "model.").EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                    throw new TokenizerFormatException(file, $"model.vocab['{entry.Name}'] is not a non-negative integer id");
                vocab[entry.Name] = id;
                maxId = Math.Max(maxId, id);
            }

            var merges = new List<(string, string)>();
            foreach (JsonElement merge in Required(model, "merges", JsonValueKind.Array, file, "model.").EnumerateArray())
            {
                if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2)
                    merges.Add((merge[0].GetString() ?? "", merge[1].GetString() ?? ""));
                else if (merge.ValueKind == JsonValueKind.String && merge.GetString()!.Split(' ') is [var left, var right])
                    merges.Add((left, right));
                else
                    throw new TokenizerFormatException(file, $"model.merges[{merges.Count}] is neither [\"a\", \"b\"] nor \"a b\"");
            }

            var addedTokens = new List<AddedToken>();
            if (root.TryGetProperty("added_tokens", out JsonElement added) && added.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement t in added.EnumerateArray())
                {
                    if (!Required(t, "id", JsonValueKind.Number, file, "added_tokens[].").TryGetInt32(out int id) || id < 0)
                        throw new TokenizerFormatException(file, $"added_tokens[{addedTokens.Count}].id is not a non-negative integer");
                    string content = Required(t, "content", JsonValueKind.String, file, "added_tokens[].").GetString()!;
                    bool special = Flag(t, "special", false);
                    addedTokens.Add(new AddedToken(id, content, special, Flag(t, "lstrip", false), Flag(t, "rstrip", false),
                        Flag(t, "normalized", !special)));
                    maxId = Math.Max(maxId, id);
                }
            }

            // Added tokens are looked up before the vocab (transformers.js overwrites vocab entries with them).
            var addedToId = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (AddedToken t in addedTokens) addedToId[t.Content] = t.Id; // a repeated text keeps its last id
            HashSet<string> extraSpecial = [];
            int? eos = null, pad = null;
            if (configJson is not null)
            {
                ReadConfig(configJson, configFile, t => addedToId.TryGetValue(t, out int a) ? a : vocab.TryGetValue(t, out int v) ? v : null,
                    extraSpecial, ref eos, ref pad);
            }

            int vocabSize = maxId + 1;
            var idToToken = new string?[vocabSize];
            var kinds = new TokenKind[vocabSize];
            var addedById = new AddedToken?[vocabSize];
            foreach ((string token, int id) in vocab)
            {
                idToToken[id] = token;
                kinds[id] = TokenKind.Bytes;
            }
            foreach (AddedToken t in addedTokens)
            {
                AddedToken token = extraSpecial.Contains(t.Content) ? t with { Special = true } : t;
                idToToken[t.Id] = t.Content;
                kinds[t.Id] = token.Special ? TokenKind.Special : TokenKind.Added;
                addedById[t.Id] = token;
            }

            // Decoded bytes of each byte-level token.
            var offsets = new int[vocabSize + 1];
            var blob = new List<byte>(vocabSize * 8);
            for (int id = 0; id < vocabSize; id++)
            {
                offsets[id] = blob.Count;
                if (kinds[id] != TokenKind.Bytes) continue;
                foreach (char c in idToToken[id]!)
                {
                    int b = ByteAlphabet.ByteOf(c);
                    if (b >= 0) blob.Add((byte)b);
                    else blob.AddRange(Encoding.UTF8.GetBytes(c.ToString())); // not in the alphabet: its own UTF-8, as HF does
                }
            }
            offsets[vocabSize] = blob.Count;

            var bpe = new ByteLevelBpe(vocab, merges, file);
            return new Qwen3Tokenizer(vocab, addedToId, idToToken, kinds, offsets, [.. blob], addedById,
                addedTokens.Select(t => addedById[t.Id]!).ToArray(), bpe, nfc, eos, pad);
        }
    }

    private static bool ReadNormalizer(JsonElement root, string file)
    {
        if (!root.TryGetProperty("normalizer", out JsonElement normalizer) || normalizer.ValueKind == JsonValueKind.Null) return false;
        string? type = normalizer.TryGetProperty("type", out JsonElement t) ? t.GetString() : null;
        if (type == "NFC") return true;
        if (type == "Sequence" && normalizer.TryGetProperty("normalizers", out JsonElement list)
            && list.EnumerateArray().All(n => n.TryGetProperty("type", out JsonElement nt) && nt.GetString() == "NFC"))
            return list.GetArrayLength() > 0;
        throw new TokenizerFormatException(file, $"normalizer.type '{type}' is not supported (only NFC)");
    }

    private static void ValidatePreTokenizer(JsonElement root, string file)
    {
        JsonElement pre = Required(root, "pre_tokenizer", JsonValueKind.Object, file, "");
        string? type = pre.TryGetProperty("type", out JsonElement t) ? t.GetString() : null;
        if (type != "Sequence" || !pre.TryGetProperty("pretokenizers", out JsonElement list) || list.GetArrayLength() != 2)
            throw new TokenizerFormatException(file, "pre_tokenizer must be a Sequence of [Split, ByteLevel] (Qwen2/Qwen3 layout)");
        JsonElement split = list[0], byteLevel = list[1];
        if (!split.TryGetProperty("type", out JsonElement st) || st.GetString() != "Split"
            || !split.TryGetProperty("pattern", out JsonElement pattern) || !pattern.TryGetProperty("Regex", out JsonElement regex))
            throw new TokenizerFormatException(file, "pre_tokenizer.pretokenizers[0] must be a Split with a Regex pattern");
        if (regex.GetString() != PreTokenizer.Pattern)
            throw new TokenizerFormatException(file, $"pre_tokenizer.pretokenizers[0].pattern.Regex is not the Qwen2/Qwen3 pattern this tokenizer implements: {regex.GetString()}");
        if (split.TryGetProperty("behavior", out JsonElement behavior) && behavior.GetString() != "Isolated"
            || split.TryGetProperty("invert", out JsonElement invert) && invert.ValueKind == JsonValueKind.True)
            throw new TokenizerFormatException(file, "pre_tokenizer.pretokenizers[0] must have behavior Isolated and invert false");
        if (!byteLevel.TryGetProperty("type", out JsonElement bt) || bt.GetString() != "ByteLevel"
            || Flag(byteLevel, "add_prefix_space", false) || Flag(byteLevel, "use_regex", true))
            throw new TokenizerFormatException(file, "pre_tokenizer.pretokenizers[1] must be ByteLevel with add_prefix_space and use_regex false");
    }

    private static void ValidateDecoder(JsonElement root, string file)
    {
        JsonElement decoder = Required(root, "decoder", JsonValueKind.Object, file, "");
        if (!decoder.TryGetProperty("type", out JsonElement t) || t.GetString() != "ByteLevel")
            throw new TokenizerFormatException(file, "decoder.type must be ByteLevel");
    }

    private static void ReadConfig(byte[] json, string file, Func<string, int?> tokenToId, HashSet<string> extraSpecial, ref int? eos, ref int? pad)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(json);
            JsonElement root = document.RootElement;
            if (root.TryGetProperty("additional_special_tokens", out JsonElement list) && list.ValueKind == JsonValueKind.Array)
                foreach (JsonElement e in list.EnumerateArray())
                    if (TokenText(e) is { } text) extraSpecial.Add(text);
            eos = root.TryGetProperty("eos_token", out JsonElement e1) && TokenText(e1) is { } eosText ? Lookup(eosText, "eos_token") : null;
            pad = root.TryGetProperty("pad_token", out JsonElement e2) && TokenText(e2) is { } padText ? Lookup(padText, "pad_token") : null;
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException(file, "not valid JSON: " + e.Message, e);
        }

        int Lookup(string text, string field) => tokenToId(text) is int id
            ? id
            : throw new TokenizerFormatException(file, $"{field} '{text}' is not a token of tokenizer.json");

        static string? TokenText(JsonElement e) => e.ValueKind switch
        {
            JsonValueKind.String => e.GetString(),
            JsonValueKind.Object when e.TryGetProperty("content", out JsonElement c) => c.GetString(),
            _ => null,
        };
    }

    private static JsonElement Required(JsonElement parent, string name, JsonValueKind kind, string file, string path)
    {
        if (!parent.TryGetProperty(name, out JsonElement value) || value.ValueKind != kind)
            throw new TokenizerFormatException(file, $"{path}{name} is missing or not a JSON {kind.ToString().ToLowerInvariant()}");
        return value;
    }

    private static bool Flag(JsonElement parent, string name, bool fallback) =>
        parent.TryGetProperty(name, out JsonElement value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : fallback;

    // ---------------------------------------------------------------- vocabulary

    /// <summary>Id of a vocab token (byte-level form, e.g. "Ġworld") or of an added token's text.</summary>
    public int? TokenToId(string token) =>
        _addedToId.TryGetValue(token, out int id) || _vocab.TryGetValue(token, out id) ? id : null;

    /// <summary>The token of an id (byte-level form for vocab tokens), null for ids without a token.</summary>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>True for added tokens flagged special (skipped by skipSpecialTokens), e.g. &lt;|im_end|&gt; but not &lt;think&gt;.</summary>
    public bool IsSpecial(int id) => (uint)id < (uint)_kinds.Length && _kinds[id] == TokenKind.Special;

    /// <summary>True for any added token (special or not).</summary>
    public bool IsAddedToken(int id) => (uint)id < (uint)_kinds.Length && _addedById[id] is not null;

    /// <summary>
    /// The bytes a token stands for: a vocab token's raw bytes (possibly part of a UTF-8 character, e.g. 0xE4 0xBD of
    /// "你"), an added token's text as UTF-8; empty for ids without a token. What OpenAI's logprobs <c>bytes</c> carry.
    /// </summary>
    public byte[] TokenBytes(int id) => KindOf(id) switch
    {
        TokenKind.Bytes => BytesOf(id).ToArray(),
        TokenKind.Added or TokenKind.Special => Encoding.UTF8.GetBytes(AddedContentOf(id)),
        _ => [],
    };

    internal ByteLevelBpe Bpe => _bpe;

    internal TokenKind KindOf(int id) => (uint)id < (uint)_kinds.Length ? _kinds[id] : TokenKind.Unknown;

    internal ReadOnlySpan<byte> BytesOf(int id) => _bytes.AsSpan(_byteOffsets[id], _byteOffsets[id + 1] - _byteOffsets[id]);

    internal string AddedContentOf(int id) => _addedById[id]!.Content;

    // ---------------------------------------------------------------- encoding

    /// <summary>Token ids of <paramref name="text"/>; added-token text (e.g. "&lt;|im_end|&gt;") becomes that token, as in HF.</summary>
    public int[] Encode(ReadOnlySpan<char> text)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        Encode(text, ids, parseAddedTokens: true);
        return [.. ids];
    }

    /// <summary>Appends the token ids of <paramref name="text"/> to <paramref name="destination"/>.</summary>
    public void Encode(ReadOnlySpan<char> text, List<int> destination) => Encode(text, destination, parseAddedTokens: true);

    /// <summary>
    /// Appends the token ids of <paramref name="text"/>. With <paramref name="parseAddedTokens"/> false, added-token
    /// text is encoded as ordinary text (HF's split_special_tokens), e.g. for untrusted user content.
    /// </summary>
    public void Encode(ReadOnlySpan<char> text, List<int> destination, bool parseAddedTokens)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (!parseAddedTokens || _rawAddedTokens.Count == 0)
        {
            EncodeSection(text, destination, parseAddedTokens);
            return;
        }
        int position = 0;
        bool stripStart = false;
        while (true)
        {
            int at = _rawAddedTokens.Find(text, position, out AddedToken? token);
            ReadOnlySpan<char> section = text[position..(at < 0 ? text.Length : at)];
            if (stripStart) section = AddedTokenMatcher.TrimStart(section);
            if (token is { LeftStrip: true }) section = AddedTokenMatcher.TrimEnd(section);
            EncodeSection(section, destination, parseAddedTokens);
            if (token is null) return;
            destination.Add(token.Id);
            stripStart = token.RightStrip;
            position = at + token.Content.Length;
        }
    }

    private void EncodeSection(ReadOnlySpan<char> section, List<int> destination, bool parseAddedTokens)
    {
        if (section.IsEmpty) return;
        if (!_nfc || Nfc.IsQuickNormalized(section))
        {
            EncodeNormalized(section, destination, parseAddedTokens);
            return;
        }
        char[]? normalized = null;
        try
        {
            int length = Nfc.Normalize(section, ref normalized);
            EncodeNormalized(normalized.AsSpan(0, length), destination, parseAddedTokens);
        }
        finally
        {
            if (normalized is not null) ArrayPool<char>.Shared.Return(normalized);
        }
    }

    private void EncodeNormalized(ReadOnlySpan<char> text, List<int> destination, bool parseAddedTokens)
    {
        if (!parseAddedTokens || _normalizedAddedTokens.Count == 0)
        {
            EncodePieces(text, destination);
            return;
        }
        int position = 0;
        bool stripStart = false;
        while (true)
        {
            int at = _normalizedAddedTokens.Find(text, position, out AddedToken? token);
            ReadOnlySpan<char> section = text[position..(at < 0 ? text.Length : at)];
            if (stripStart) section = AddedTokenMatcher.TrimStart(section);
            if (token is { LeftStrip: true }) section = AddedTokenMatcher.TrimEnd(section);
            EncodePieces(section, destination);
            if (token is null) return;
            destination.Add(token.Id);
            stripStart = token.RightStrip;
            position = at + token.Content.Length;
        }
    }

    private void EncodePieces(ReadOnlySpan<char> text, List<int> destination)
    {
        int position = 0;
        while (position < text.Length)
        {
            int end = PreTokenizer.NextPieceEnd(text, position);
            _bpe.EncodePiece(text[position..end], destination);
            position = end;
        }
    }

    // ---------------------------------------------------------------- decoding

    /// <summary>
    /// Text of <paramref name="ids"/>. Byte runs are decoded as UTF-8 with U+FFFD for invalid sequences; added tokens
    /// appear as their text unless special and <paramref name="skipSpecialTokens"/>. Ids without a token are skipped.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        byte[] pending = ArrayPool<byte>.Shared.Rent(256);  // [pendingCount]: bytes of the current byte run
        char[] chars = ArrayPool<char>.Shared.Rent(256);    // [charCount]
        int pendingCount = 0, charCount = 0;
        try
        {
            foreach (int id in ids)
            {
                switch (KindOf(id))
                {
                    case TokenKind.Bytes:
                        ReadOnlySpan<byte> bytes = BytesOf(id);
                        Ensure(ref pending, pendingCount + bytes.Length, pendingCount);
                        bytes.CopyTo(pending.AsSpan(pendingCount));
                        pendingCount += bytes.Length;
                        break;
                    case TokenKind.Special when skipSpecialTokens:
                        break;
                    case TokenKind.Added or TokenKind.Special:
                        FlushBytes(pending, ref pendingCount, ref chars, ref charCount);
                        string content = AddedContentOf(id);
                        Ensure(ref chars, charCount + content.Length, charCount);
                        content.CopyTo(chars.AsSpan(charCount));
                        charCount += content.Length;
                        break;
                }
            }
            FlushBytes(pending, ref pendingCount, ref chars, ref charCount);
            return new string(chars, 0, charCount);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(pending);
            ArrayPool<char>.Shared.Return(chars);
        }
    }

    private static void FlushBytes(byte[] pending, ref int pendingCount, ref char[] chars, ref int charCount)
    {
        if (pendingCount == 0) return;
        Ensure(ref chars, charCount + pendingCount, charCount); // UTF-8 never yields more chars than bytes
        charCount += Encoding.UTF8.GetChars(pending.AsSpan(0, pendingCount), chars.AsSpan(charCount));
        pendingCount = 0;
    }

    private static void Ensure<T>(ref T[] buffer, int needed, int used)
    {
        if (buffer.Length >= needed) return;
        T[] bigger = ArrayPool<T>.Shared.Rent(Math.Max(needed, buffer.Length * 2));
        buffer.AsSpan(0, used).CopyTo(bigger);
        ArrayPool<T>.Shared.Return(buffer);
        buffer = bigger;
    }

    /// <summary>A streaming decoder: feed ids one at a time, get only completed text.</summary>
    public IncrementalDecoder CreateIncrementalDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);
}
