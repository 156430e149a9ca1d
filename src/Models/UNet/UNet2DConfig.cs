using System.Text;
using System.Text.Json;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.UNet;

/// <summary>The configuration of a diffusers <c>UNet2DModel</c> (config.json as save_pretrained writes
/// it; diffusers src/diffusers/models/unets/unet_2d.py). Property defaults equal diffusers' constructor
/// defaults, so a key missing from the file means what it means in diffusers. Only the subset this
/// library computes is accepted; anything else is rejected with the key, the value and the
/// supported values. Equality compares the <see cref="ToJson"/> form.</summary>
public sealed record UNet2DConfig
{
    /// <summary>Supported down block types.</summary>
    public static readonly IReadOnlyList<string> SupportedDownBlocks = ["DownBlock2D", "AttnDownBlock2D"];
    /// <summary>Supported up block types.</summary>
    public static readonly IReadOnlyList<string> SupportedUpBlocks = ["UpBlock2D", "AttnUpBlock2D"];

    /// <summary>sample_size: input height (and width, unless <see cref="SampleWidth"/> is set); null when unspecified.</summary>
    public int? SampleSize { get; init; }
    /// <summary>Width when sample_size is a [height, width] pair; null for square samples.</summary>
    public int? SampleWidth { get; init; }
    /// <summary>in_channels.</summary>
    public int InChannels { get; init; } = 3;
    /// <summary>out_channels.</summary>
    public int OutChannels { get; init; } = 3;
    /// <summary>center_input_sample: feed 2x-1 instead of x.</summary>
    public bool CenterInputSample { get; init; }
    /// <summary>time_embedding_type; only "positional" (sinusoidal Timesteps) is supported.</summary>
    public string TimeEmbeddingType { get; init; } = "positional";
    /// <summary>time_embedding_dim; null (or 0) means 4 * block_out_channels[0], see <see cref="TimeEmbedDim"/>.</summary>
    public int? TimeEmbeddingDim { get; init; }
    /// <summary>flip_sin_to_cos: embedding is [cos, sin] instead of [sin, cos].</summary>
    public bool FlipSinToCos { get; init; } = true;
    /// <summary>freq_shift (downscale_freq_shift of the sinusoidal embedding).</summary>
    public double FreqShift { get; init; }
    /// <summary>down_block_types, one per resolution (DownBlock2D or AttnDownBlock2D).</summary>
    public string[] DownBlockTypes { get; init; } = ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"];
    /// <summary>mid_block_type: "UNetMidBlock2D", or null for no mid block.</summary>
    public string? MidBlockType { get; init; } = "UNetMidBlock2D";
    /// <summary>up_block_types, one per resolution (UpBlock2D or AttnUpBlock2D).</summary>
    public string[] UpBlockTypes { get; init; } = ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"];
    /// <summary>block_out_channels, one per resolution.</summary>
    public int[] BlockOutChannels { get; init; } = [224, 448, 672, 896];
    /// <summary>layers_per_block: resnets per down block (up blocks have one more).</summary>
    public int LayersPerBlock { get; init; } = 2;
    /// <summary>mid_block_scale_factor: output_scale_factor of the mid block's resnets.</summary>
    public double MidBlockScaleFactor { get; init; } = 1;
    /// <summary>downsample_padding of the stride-2 downsampling convolution.</summary>
    public int DownsamplePadding { get; init; } = 1;
    /// <summary>downsample_type; only "conv".</summary>
    public string DownsampleType { get; init; } = "conv";
    /// <summary>upsample_type; only "conv" (nearest x2 then 3x3 conv).</summary>
    public string UpsampleType { get; init; } = "conv";
    /// <summary>dropout (training only; ignored at inference).</summary>
    public double Dropout { get; init; }
    /// <summary>act_fn; only "silu" (or its alias "swish").</summary>
    public string ActFn { get; init; } = "silu";
    /// <summary>attention_head_dim; null means one head spanning all channels (see <see cref="AttentionHeads"/>).</summary>
    public int? AttentionHeadDim { get; init; } = 8;
    /// <summary>norm_num_groups of every GroupNorm in resnets, down/up attention and conv_norm_out.</summary>
    public int NormNumGroups { get; init; } = 32;
    /// <summary>attn_norm_num_groups: GroupNorm groups of the mid block's attention (see <see cref="MidAttentionNormGroups"/>).</summary>
    public int? AttnNormNumGroups { get; init; }
    /// <summary>norm_eps of every GroupNorm.</summary>
    public double NormEps { get; init; } = 1e-5;
    /// <summary>resnet_time_scale_shift: "default" (add projected time embedding) or "scale_shift" (FiLM).</summary>
    public string ResnetTimeScaleShift { get; init; } = "default";
    /// <summary>add_attention: whether the mid block has attention.</summary>
    public bool AddAttention { get; init; } = true;
    /// <summary>class_embed_type; only null is supported.</summary>
    public string? ClassEmbedType { get; init; }
    /// <summary>num_class_embeds: when set (and class_embed_type null) the model has a class-label embedding table.</summary>
    public int? NumClassEmbeds { get; init; }
    /// <summary>num_train_timesteps (used by diffusers only for "learned" embeddings; ignored here).</summary>
    public int? NumTrainTimesteps { get; init; }
    /// <summary>Keys of the file this library does not know and ignored (diffusers ignores them too, with a warning).</summary>
    public string[] IgnoredKeys { get; init; } = [];

    /// <summary>Dimension of the time embedding MLP output (diffusers: time_embedding_dim or 4 * block_out_channels[0]).</summary>
    public int TimeEmbedDim => TimeEmbeddingDim is int d && d > 0 ? d : 4 * BlockOutChannels[0];

    /// <summary>Number of attention heads for a block with this many channels (diffusers: channels // attention_head_dim; 1 when null).</summary>
    public int AttentionHeads(int channels) => AttentionHeadDim is int d ? channels / d : 1;

    /// <summary>Per-head dimension for a block with this many channels.</summary>
    public int AttentionHeadSize(int channels) => AttentionHeadDim ?? channels;

    /// <summary>Groups of the mid-block attention GroupNorm, or null for no norm there (diffusers UNetMidBlock2D:
    /// attn_norm_num_groups, else norm_num_groups when resnet_time_scale_shift is "default", else none).</summary>
    public int? MidAttentionNormGroups => AttnNormNumGroups ?? (ResnetTimeScaleShift == "default" ? NormNumGroups : null);

    /// <summary>Whether the model has a mid block.</summary>
    public bool HasMidBlock => MidBlockType is not null;

    /// <summary>Reads and validates a diffusers UNet2DModel config.json.</summary>
    /// <exception cref="CheckpointFormatException">Malformed, inconsistent or unsupported; names the file, key and value.</exception>
    public static UNet2DConfig Load(string path) => Parse(File.ReadAllText(path), path);

    /// <summary>Parses and validates config JSON; <paramref name="fileName"/> is used in error messages.</summary>
    /// <exception cref="CheckpointFormatException">Malformed, inconsistent or unsupported; names the file, key and value.</exception>
    public static UNet2DConfig Parse(string json, string fileName)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new CheckpointFormatException(fileName, $"config is not valid JSON: {e.Message}", e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(fileName, $"config must be a JSON object but is {root.ValueKind}");
            var r = new Reader(fileName);
            var c = new UNet2DConfig();
            var ignored = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var p in root.EnumerateObject())
            {
                if (!seen.Add(p.Name)) throw r.Fail(p.Name, "appears twice");
                var v = p.Value;
                switch (p.Name)
                {
                    case "_class_name":
                        string cls = r.String(p.Name, v);
                        if (cls != "UNet2DModel") throw r.Fail(p.Name, $"is \"{cls}\" but only \"UNet2DModel\" configs are supported");
                        break;
                    case "sample_size":
                        if (v.ValueKind == JsonValueKind.Array)
                        {
                            var hw = r.IntArray(p.Name, v, 1);
                            if (hw.Length != 2) throw r.Fail(p.Name, $"must be an integer or [height, width] but is {v.GetRawText()}");
                            c = c with { SampleSize = hw[0], SampleWidth = hw[0] == hw[1] ? null : hw[1] };
                        }
                        else c = c with { SampleSize = r.NullableInt(p.Name, v, 1), SampleWidth = null };
                        break;
                    case "in_channels": c = c with { InChannels = r.Int(p.Name, v, 1) }; break;
                    case "out_channels": c = c with { OutChannels = r.Int(p.Name, v, 1) }; break;
                    case "center_input_sample": c = c with { CenterInputSample = r.Bool(p.Name, v) }; break;
                    case "time_embedding_type": c = c with { TimeEmbeddingType = r.OneOf(p.Name, v, "positional") }; break;
                    case "time_embedding_dim": c = c with { TimeEmbeddingDim = r.NullableInt(p.Name, v, 0) }; break;
                    case "flip_sin_to_cos": c = c with { FlipSinToCos = r.Bool(p.Name, v) }; break;
                    case "freq_shift": c = c with { FreqShift = r.Double(p.Name, v) }; break;
                    case "down_block_types": c = c with { DownBlockTypes = r.BlockTypes(p.Name, v, SupportedDownBlocks) }; break;
                    case "up_block_types": c = c with { UpBlockTypes = r.BlockTypes(p.Name, v, SupportedUpBlocks) }; break;
                    case "mid_block_type":
                        c = c with { MidBlockType = v.ValueKind == JsonValueKind.Null ? null : r.OneOf(p.Name, v, "UNetMidBlock2D") };
                        break;
                    case "block_out_channels": c = c with { BlockOutChannels = r.IntArray(p.Name, v, 1) }; break;
                    case "layers_per_block": c = c with { LayersPerBlock = r.Int(p.Name, v, 1) }; break;
                    case "mid_block_scale_factor": c = c with { MidBlockScaleFactor = r.Double(p.Name, v) }; break;
                    case "downsample_padding": c = c with { DownsamplePadding = r.Int(p.Name, v, 0) }; break;
                    case "downsample_type": c = c with { DownsampleType = r.OneOf(p.Name, v, "conv") }; break;
                    case "upsample_type": c = c with { UpsampleType = r.OneOf(p.Name, v, "conv") }; break;
                    case "dropout": c = c with { Dropout = r.Double(p.Name, v) }; break;
                    case "act_fn": c = c with { ActFn = r.OneOf(p.Name, v, "silu", "swish") }; break;
                    case "attention_head_dim": c = c with { AttentionHeadDim = r.NullableInt(p.Name, v, 1) }; break;
                    case "norm_num_groups": c = c with { NormNumGroups = r.Int(p.Name, v, 1) }; break;
                    case "attn_norm_num_groups": c = c with { AttnNormNumGroups = r.NullableInt(p.Name, v, 1) }; break;
                    case "norm_eps": c = c with { NormEps = r.Double(p.Name, v) }; break;
                    case "resnet_time_scale_shift": c = c with { ResnetTimeScaleShift = r.OneOf(p.Name, v, "default", "scale_shift") }; break;
                    case "add_attention": c = c with { AddAttention = r.Bool(p.Name, v) }; break;
                    case "class_embed_type":
                        if (v.ValueKind != JsonValueKind.Null)
                            throw r.Fail(p.Name, $"unsupported value {v.GetRawText()} (supported: null)");
                        break;
                    case "num_class_embeds": c = c with { NumClassEmbeds = r.NullableInt(p.Name, v, 1) }; break;
                    case "num_train_timesteps": c = c with { NumTrainTimesteps = r.NullableInt(p.Name, v, 1) }; break;
                    default:
                        // "_diffusers_version", "_name_or_path" and the like carry no model semantics.
                        if (!p.Name.StartsWith('_')) ignored.Add(p.Name);
                        break;
                }
            }
            c = c with { IgnoredKeys = ignored.ToArray() };
            c.Check(problem => new CheckpointFormatException(fileName, problem));
            return c;
        }
    }

    /// <summary>Checks that the configuration is supported and self-consistent.</summary>
    /// <exception cref="ArgumentException">Unsupported or inconsistent; the message names the key.</exception>
    public void Validate() => Check(problem => new ArgumentException(problem));

    private void Check(Func<string, Exception> fail)
    {
        static string List(IEnumerable<int> a) => "[" + string.Join(", ", a) + "]";
        static string Names(IEnumerable<string> a) => "[" + string.Join(", ", a.Select(s => $"\"{s}\"")) + "]";
        void Require(bool ok, string problem) { if (!ok) throw fail(problem); }
        void OneOf(string key, string? value, params string?[] allowed) =>
            Require(allowed.Contains(value), $"key '{key}': unsupported value {(value is null ? "null" : $"\"{value}\"")} (supported: {string.Join(", ", allowed.Select(a => a is null ? "null" : $"\"{a}\""))})");

        OneOf("time_embedding_type", TimeEmbeddingType, "positional");
        OneOf("act_fn", ActFn, "silu", "swish");
        OneOf("downsample_type", DownsampleType, "conv");
        OneOf("upsample_type", UpsampleType, "conv");
        OneOf("resnet_time_scale_shift", ResnetTimeScaleShift, "default", "scale_shift");
        OneOf("mid_block_type", MidBlockType, "UNetMidBlock2D", null);
        OneOf("class_embed_type", ClassEmbedType, [null]);
        foreach (var b in DownBlockTypes ?? []) OneOf("down_block_types", b, [.. SupportedDownBlocks]);
        foreach (var b in UpBlockTypes ?? []) OneOf("up_block_types", b, [.. SupportedUpBlocks]);

        Require(BlockOutChannels is { Length: > 0 }, "key 'block_out_channels': must list at least one channel count");
        Require(DownBlockTypes is not null && UpBlockTypes is not null, "keys 'down_block_types' and 'up_block_types' must be lists");
        int n = BlockOutChannels.Length;
        Require(DownBlockTypes!.Length == n && UpBlockTypes!.Length == n,
            $"keys 'down_block_types' ({DownBlockTypes.Length}: {Names(DownBlockTypes)}), 'up_block_types' ({UpBlockTypes!.Length}: {Names(UpBlockTypes)}) and 'block_out_channels' ({n}: {List(BlockOutChannels)}) must have the same length");
        Require(InChannels >= 1 && OutChannels >= 1, $"keys 'in_channels' ({InChannels}) and 'out_channels' ({OutChannels}) must be at least 1");
        Require(LayersPerBlock >= 1, $"key 'layers_per_block': {LayersPerBlock} must be at least 1");
        Require(DownsamplePadding >= 0, $"key 'downsample_padding': {DownsamplePadding} must be non-negative");
        Require(NormNumGroups >= 1, $"key 'norm_num_groups': {NormNumGroups} must be at least 1");
        Require(NormEps > 0 && double.IsFinite(NormEps), $"key 'norm_eps': {NormEps} must be a positive number");
        Require(double.IsFinite(FreqShift), $"key 'freq_shift': {FreqShift} must be finite");
        Require(double.IsFinite(MidBlockScaleFactor) && MidBlockScaleFactor != 0, $"key 'mid_block_scale_factor': {MidBlockScaleFactor} must be finite and non-zero");
        Require(Dropout >= 0 && Dropout < 1, $"key 'dropout': {Dropout} must be in [0, 1)");
        Require(TimeEmbeddingDim is null or >= 0, $"key 'time_embedding_dim': {TimeEmbeddingDim} must be positive or null");
        Require(AttentionHeadDim is null or >= 1, $"key 'attention_head_dim': {AttentionHeadDim} must be positive or null");
        Require(AttnNormNumGroups is null or >= 1, $"key 'attn_norm_num_groups': {AttnNormNumGroups} must be positive or null");
        Require(NumClassEmbeds is null or >= 1, $"key 'num_class_embeds': {NumClassEmbeds} must be positive or null");

        foreach (int ch in BlockOutChannels)
        {
            Require(ch >= 1, $"key 'block_out_channels': {List(BlockOutChannels)} must be positive");
            Require(ch % NormNumGroups == 0,
                $"key 'norm_num_groups': {NormNumGroups} does not divide block_out_channels entry {ch} ({List(BlockOutChannels)})");
        }

        void RequireHeads(string where, int channels)
        {
            if (AttentionHeadDim is int d)
                Require(channels % d == 0,
                    $"key 'attention_head_dim': {d} does not divide the {channels} channels of {where} (only whole heads are supported)");
        }
        for (int i = 0; i < n; i++)
        {
            if (DownBlockTypes[i] == "AttnDownBlock2D") RequireHeads($"down block {i}", BlockOutChannels[i]);
            if (UpBlockTypes[i] == "AttnUpBlock2D") RequireHeads($"up block {i}", BlockOutChannels[n - 1 - i]);
        }
        if (HasMidBlock && AddAttention)
        {
            int mid = BlockOutChannels[^1];
            RequireHeads("the mid block", mid);
            if (MidAttentionNormGroups is int g)
                Require(mid % g == 0, $"key 'attn_norm_num_groups': {g} does not divide the {mid} channels of the mid block");
        }

        int factor = 1 << Math.Min(n - 1, 30);
        foreach (var (key, size) in new[] { ("sample_size", SampleSize), ("sample_size (width)", SampleWidth) })
        {
            if (size is int s)
                Require(s >= 1 && s % factor == 0, $"key '{key}': {s} must be a positive multiple of 2^(len(block_out_channels)-1) = {factor}");
        }
    }

    /// <summary>The config as diffusers' save_pretrained writes it (sorted keys, 2-space indent), so that
    /// <c>UNet2DModel.from_pretrained</c> reads the same model.</summary>
    public string ToJson()
    {
        var values = new SortedDictionary<string, Action<Utf8JsonWriter, string>>(StringComparer.Ordinal)
        {
            ["_class_name"] = (w, k) => w.WriteString(k, "UNet2DModel"),
            ["_diffusers_version"] = (w, k) => w.WriteString(k, "0.30.0"),
            ["act_fn"] = (w, k) => w.WriteString(k, ActFn),
            ["add_attention"] = (w, k) => w.WriteBoolean(k, AddAttention),
            ["attention_head_dim"] = (w, k) => WriteInt(w, k, AttentionHeadDim),
            ["attn_norm_num_groups"] = (w, k) => WriteInt(w, k, AttnNormNumGroups),
            ["block_out_channels"] = (w, k) => WriteInts(w, k, BlockOutChannels),
            ["center_input_sample"] = (w, k) => w.WriteBoolean(k, CenterInputSample),
            ["class_embed_type"] = (w, k) => WriteString(w, k, ClassEmbedType),
            ["down_block_types"] = (w, k) => WriteStrings(w, k, DownBlockTypes),
            ["downsample_padding"] = (w, k) => w.WriteNumber(k, DownsamplePadding),
            ["downsample_type"] = (w, k) => w.WriteString(k, DownsampleType),
            ["dropout"] = (w, k) => WriteDouble(w, k, Dropout, asFloat: true),
            ["flip_sin_to_cos"] = (w, k) => w.WriteBoolean(k, FlipSinToCos),
            ["freq_shift"] = (w, k) => WriteDouble(w, k, FreqShift, asFloat: false),
            ["in_channels"] = (w, k) => w.WriteNumber(k, InChannels),
            ["layers_per_block"] = (w, k) => w.WriteNumber(k, LayersPerBlock),
            ["mid_block_scale_factor"] = (w, k) => WriteDouble(w, k, MidBlockScaleFactor, asFloat: false),
            ["mid_block_type"] = (w, k) => WriteString(w, k, MidBlockType),
            ["norm_eps"] = (w, k) => WriteDouble(w, k, NormEps, asFloat: true),
            ["norm_num_groups"] = (w, k) => w.WriteNumber(k, NormNumGroups),
            ["num_class_embeds"] = (w, k) => WriteInt(w, k, NumClassEmbeds),
            ["num_train_timesteps"] = (w, k) => WriteInt(w, k, NumTrainTimesteps),
            ["out_channels"] = (w, k) => w.WriteNumber(k, OutChannels),
            ["resnet_time_scale_shift"] = (w, k) => w.WriteString(k, ResnetTimeScaleShift),
            ["sample_size"] = (w, k) =>
            {
                if (SampleWidth is int width && SampleSize is int height) WriteInts(w, k, [height, width]);
                else WriteInt(w, k, SampleSize);
            },
            ["time_embedding_dim"] = (w, k) => WriteInt(w, k, TimeEmbeddingDim),
            ["time_embedding_type"] = (w, k) => w.WriteString(k, TimeEmbeddingType),
            ["up_block_types"] = (w, k) => WriteStrings(w, k, UpBlockTypes),
            ["upsample_type"] = (w, k) => w.WriteString(k, UpsampleType),
        };
        var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            foreach (var (key, write) in values) write(w, key);
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    /// <summary>Writes <see cref="ToJson"/> to <paramref name="path"/> (through a temporary file).</summary>
    public void Save(string path)
    {
        Validate();
        FileBytes.WriteAtomically(path, Encoding.UTF8.GetBytes(ToJson()), []);
    }

    /// <summary>Structural equality (compares <see cref="ToJson"/>; <see cref="IgnoredKeys"/> do not count).</summary>
    public bool Equals(UNet2DConfig? other) => other is not null && ToJson() == other.ToJson();

    /// <summary>Hash consistent with <see cref="Equals(UNet2DConfig?)"/>.</summary>
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(ToJson());

    private static void WriteInt(Utf8JsonWriter w, string key, int? value)
    {
        if (value is int v) w.WriteNumber(key, v); else w.WriteNull(key);
    }

    private static void WriteString(Utf8JsonWriter w, string key, string? value)
    {
        if (value is null) w.WriteNull(key); else w.WriteString(key, value);
    }

    private static void WriteInts(Utf8JsonWriter w, string key, int[] values)
    {
        w.WriteStartArray(key);
        foreach (int v in values) w.WriteNumberValue(v);
        w.WriteEndArray();
    }

    private static void WriteStrings(Utf8JsonWriter w, string key, string[] values)
    {
        w.WriteStartArray(key);
        foreach (var v in values) w.WriteStringValue(v);
        w.WriteEndArray();
    }

    // Python writes 1 for an int and 1.0 / 1e-05 for a float; either loads, but keep floats recognisable.
    private static void WriteDouble(Utf8JsonWriter w, string key, double value, bool asFloat)
    {
        if (Math.Abs(value) < 1e15 && value == Math.Floor(value))
        {
            if (asFloat) { w.WritePropertyName(key); w.WriteRawValue(((long)value).ToString(System.Globalization.CultureInfo.InvariantCulture) + ".0"); }
            else w.WriteNumber(key, (long)value);
        }
        else w.WriteNumber(key, value);
    }

    /// <summary>Typed JSON value readers whose errors name the file, the key and the offending value.</summary>
    private readonly struct Reader(string fileName)
    {
        public CheckpointFormatException Fail(string key, string problem) => new(fileName, $"key '{key}': {problem}");

        public string String(string key, JsonElement v) =>
            v.ValueKind == JsonValueKind.String ? v.GetString()! : throw Fail(key, $"must be a string but is {v.GetRawText()}");

        public string OneOf(string key, JsonElement v, params string[] allowed)
        {
            string s = String(key, v);
            return allowed.Contains(s) ? s
                : throw Fail(key, $"unsupported value \"{s}\" (supported: {string.Join(", ", allowed.Select(a => $"\"{a}\""))})");
        }

        public bool Bool(string key, JsonElement v) => v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Fail(key, $"must be true or false but is {v.GetRawText()}"),
        };

        public double Double(string key, JsonElement v) =>
            v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d) ? d
                : throw Fail(key, $"must be a finite number but is {v.GetRawText()}");

        public int Int(string key, JsonElement v, int min)
        {
            // Accept 32 and 32.0 (Python may write either), nothing fractional.
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && d >= min && d <= int.MaxValue)
                return (int)d;
            throw Fail(key, $"must be an integer >= {min} but is {v.GetRawText()}");
        }

        public int? NullableInt(string key, JsonElement v, int min) => v.ValueKind == JsonValueKind.Null ? null : Int(key, v, min);

        public int[] IntArray(string key, JsonElement v, int min)
        {
            if (v.ValueKind != JsonValueKind.Array) throw Fail(key, $"must be a list of integers but is {v.GetRawText()}");
            var self = this;
            return v.EnumerateArray().Select(e => self.Int(key, e, min)).ToArray();
        }

        public string[] BlockTypes(string key, JsonElement v, IReadOnlyList<string> supported)
        {
            if (v.ValueKind != JsonValueKind.Array) throw Fail(key, $"must be a list of block names but is {v.GetRawText()}");
            var result = new List<string>();
            foreach (var e in v.EnumerateArray())
            {
                string s = String(key, e);
                // diffusers' get_down_block/get_up_block strip a leading "UNetRes".
                string name = s.StartsWith("UNetRes", StringComparison.Ordinal) ? s[7..] : s;
                if (!supported.Contains(name))
                    throw Fail(key, $"unsupported value \"{s}\" (supported: {string.Join(", ", supported.Select(a => $"\"{a}\""))})");
                result.Add(name);
            }
            return result.ToArray();
        }
    }
}
