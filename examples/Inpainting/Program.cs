// Inpainting a digit with the shipped MNIST model: hide the centre, draw posterior samples, compare.
using PosteriorGpu;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;

string repo = args.Length > 0 ? args[0] : ".";
using var device = GpuDevice.Open();   // CUDA, else OpenCL, else the CPU (POSTERIORGPU_DEVICE=cpu|cuda|opencl picks one)
using var model = DiffusionModel.Load(device, Path.Combine(repo, "models/mnist-unet"));
float[] digit = Npy.Read(Path.Combine(repo, "data/mnist-test-digits.npy")).ToFloat32()[..model.ImageLength];

var mask = new float[32 * 32];         // 1 = observed, 0 = missing: a 16 x 16 hole in the middle
for (int i = 0; i < mask.Length; i++) mask[i] = i / 32 is >= 8 and < 24 && i % 32 is >= 8 and < 24 ? 0 : 1;
using var inpainting = new InpaintingOperator(device, 1, 32, 32, mask);

var sampler = new PosteriorSampler(model, inpainting, 0.05f, AnnealedLangevinOptions.Image32);   // annealed Langevin, 24 network calls a sample
float[] y = sampler.Measure(digit, seed: 1);                             // y = mask * digit + 0.05 z
float[][] samples = sampler.Sample(y, count: 4, seed: 1);               // 4 draws of p(x | y), [1, 32, 32] each

double Rmse(Func<int, float> guess) => Math.Sqrt(Enumerable.Range(0, mask.Length).Where(i => mask[i] == 0)
    .Average(i => Math.Pow(guess(i) - digit[i], 2)));
Console.WriteLine($"hidden pixels, RMSE against the truth: posterior mean {Rmse(i => samples.Average(s => s[i])):F3}, " +
                  $"one sample {Rmse(i => samples[0][i]):F3}, background fill {Rmse(_ => -1f):F3}");
