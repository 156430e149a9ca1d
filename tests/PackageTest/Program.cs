// Draws one MNIST image with DDIM through the PosteriorGpu packages (as an app that installed them
// would), on the CPU accelerator; exit code 1 unless the result has the model's shape and is finite.
using System.Diagnostics;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

if (args.Length != 1)
{
    Console.Error.WriteLine("usage: PackageTest <diffusers model folder, e.g. models/mnist-unet>");
    return 2;
}
string model = args[0];
const int steps = 3;
var watch = Stopwatch.StartNew();

using var device = GpuDevice.Open(DeviceKind.Cpu);
using var unet = UNet2DModel.Load(device, model);
var config = SchedulerConfig.Load(Path.Combine(model, "scheduler_config.json"));
var sampler = SamplerFactory.Create("ddim", unet, NoiseSchedule.FromConfig(config), SamplerOptions.FromConfig(config));

int[] shape = [1, unet.Channels, unet.Height, unet.Width];
var start = new float[shape[0] * shape[1] * shape[2] * shape[3]];
var noise = new RandomDraw(Seed: 7, Stream: 1, Step: 0);
for (int i = 0; i < start.Length; i++) start[i] = noise.Normal(i);

using var x = Tensor.FromHost(device, start, shape);
sampler.Sample(x, steps, seed: 7);
float[] image = x.ToHost();

string version = typeof(SamplerFactory).Assembly.GetName().Version?.ToString(3) ?? "?";
bool shapeOk = unet.Channels == 1 && unet.Height == 32 && unet.Width == 32 && image.Length == 32 * 32;
int nonFinite = image.Count(v => !float.IsFinite(v));
bool changed = image.Where((v, i) => v != start[i]).Any();
if (!shapeOk || nonFinite > 0 || !changed)
{
    Console.Error.WriteLine($"package test: FAILED: {Shape.Format(shape)} ({image.Length} values; expected [1, 1, 32, 32]), " +
        $"{nonFinite} not finite, {(changed ? "changed" : "unchanged")} by the sampler");
    return 1;
}
Console.WriteLine($"package test: PosteriorGpu.Samplers {version}: {sampler.Name}, {steps} steps, {Shape.Format(shape)} from {model} " +
    $"on {device.Description}: finite, range [{image.Min():F2}, {image.Max():F2}], {watch.Elapsed.TotalSeconds:F1} s");
return 0;
