// Inpainting a digit with the shipped MNIST model: see a quarter of its pixels, draw posterior samples with DPS,
// compare them with the truth on the hidden pixels and write a picture of the result.
using PosteriorGpu;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using SkiaSharp;

string repo = args.Length > 0 ? args[0] : ".";
using var device = GpuDevice.Open();   // CUDA, else OpenCL, else the CPU (POSTERIORGPU_DEVICE=cpu|cuda|opencl picks one)
// DPS differentiates through the network, so the model is loaded with its backward pass.
using var model = DiffusionModel.Load(device, Path.Combine(repo, "models/mnist-unet"), withGradients: true);
float[] digit = Npy.Read(Path.Combine(repo, "data/mnist-test-digits.npy")).ToFloat32()[..model.ImageLength];

// Each pixel observed with probability 0.25 (a fixed random mask), the others hidden.
using var inpainting = InpaintingOperator.RandomPixels(device, 1, 32, 32, 0.25, seed: 0);
var sampler = new PosteriorSampler(model, inpainting, 0.05f, DpsOptions.Image32 with { StepSize = 3 });   // DPS: 24 steps, zeta 3
float[] y = sampler.Measure(digit, seed: 1);                 // y = mask * digit + 0.05 z
float[][] samples = sampler.Sample(y, count: 4, seed: 1);   // 4 draws of p(x | y), [1, 32, 32] each
float[] mean = Enumerable.Range(0, digit.Length).Select(i => samples.Average(s => Math.Clamp(s[i], -1f, 1f))).ToArray();

float[] mask = inpainting.Mask;
double Psnr(Func<int, float> guess) => 10 * Math.Log10(4 / Enumerable.Range(0, mask.Length).Where(i => mask[i] == 0)
    .Average(i => Math.Pow(Math.Clamp(guess(i), -1f, 1f) - digit[i], 2)));   // images in [-1, 1]: peak-to-peak 2
float seenMean = Enumerable.Range(0, mask.Length).Where(i => mask[i] == 1).Average(i => y[i]);
Console.WriteLine($"hidden pixels, PSNR against the truth: posterior mean {Psnr(i => mean[i]):F2} dB, " +
                  $"one sample {Psnr(i => samples[0][i]):F2} dB, mean of the seen pixels {Psnr(_ => seenMean):F2} dB");

// The picture: truth | measurement | 4 samples | posterior mean, each 32 x 32 drawn 4 x larger.
float[][] row = [digit, y, .. samples, mean];
using var bitmap = new SKBitmap(row.Length * 128, 128);
for (int k = 0; k < row.Length; k++)
    for (int py = 0; py < 128; py++)
        for (int px = 0; px < 128; px++)
        {
            byte v = (byte)Math.Clamp((row[k][py / 4 * 32 + px / 4] + 1) * 127.5, 0, 255);
            bitmap.SetPixel(k * 128 + px, py, new SKColor(v, v, v));
        }
string picture = Path.Combine(repo, "out", "inpainting.png");
Directory.CreateDirectory(Path.GetDirectoryName(picture)!);
using (var file = File.Create(picture)) bitmap.Encode(file, SKEncodedImageFormat.Png, 100);
Console.WriteLine($"wrote {picture}: truth | measurement | 4 samples | posterior mean");
