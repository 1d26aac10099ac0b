#!/usr/bin/python3
"""PyTorch peer for `npm run bench:model`: training steps of the official HarDNet on the CPU.

    /usr/bin/python3 bench/torch_hardnet_train.py --arch 68 --batch 8 --image_size 224 --threads 2 [--steps 5] [--warmup 2]

The model is the official one (PingoLH/Pytorch-HarDNet, hardnet.py), reduced to what the step needs; its parameter
count is checked against the reference figures so that a porting slip shows up as an error. One step is what
bench:model times: forward in train mode, cross-entropy, backward, SGD with momentum 0.9 and weight decay 5e-5.
Prints the median images/s over the timed steps (and one JSON line with --json).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn


class ConvLayer(nn.Sequential):
    def __init__(self, cin, cout, kernel=3, stride=1):
        super().__init__()
        self.add_module('conv', nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False))
        self.add_module('norm', nn.BatchNorm2d(cout))
        self.add_module('relu', nn.ReLU6(True))


class DWConvLayer(nn.Sequential):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.add_module('dwconv', nn.Conv2d(cout, cout, 3, stride, 1, groups=cout, bias=False))
        self.add_module('norm', nn.BatchNorm2d(cout))


class CombConvLayer(nn.Sequential):
    def __init__(self, cin, cout, kernel=1, stride=1):
        super().__init__()
        self.add_module('layer1', ConvLayer(cin, cout, kernel))
        self.add_module('layer2', DWConvLayer(cout, cout, stride))


class HarDBlock(nn.Module):
    def get_link(self, layer, base_ch, growth_rate, grmul):
        if layer == 0:
            return base_ch, 0, []
        out_channels = growth_rate
        link = []
        for i in range(10):
            dv = 2 ** i
            if layer % dv == 0:
                link.append(layer - dv)
                if i > 0:
                    out_channels *= grmul
        out_channels = int(int(out_channels + 1) / 2) * 2
        in_channels = sum(self.get_link(i, base_ch, growth_rate, grmul)[0] for i in link)
        return out_channels, in_channels, link

    def __init__(self, cin, growth_rate, grmul, n_layers, dwconv=False):
        super().__init__()
        self.links = []
        layers = []
        self.out_channels = 0
        for i in range(n_layers):
            outch, inch, link = self.get_link(i + 1, cin, growth_rate, grmul)
            self.links.append(link)
            layers.append(CombConvLayer(inch, outch) if dwconv else ConvLayer(inch, outch))
            if i % 2 == 0 or i == n_layers - 1:
                self.out_channels += outch
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        outs = [x]
        for layer, link in zip(self.layers, self.links):
            tin = [outs[i] for i in link]
            outs.append(layer(torch.cat(tin, 1) if len(tin) > 1 else tin[0]))
        t = len(outs)
        return torch.cat([outs[i] for i in range(t) if i == t - 1 or i % 2 == 1], 1)


ARCHS = {
    # first_ch, second kernel, max_pool, grmul, drop, ch_list, gr, n_layers, downSamp, dwconv, parameters (1000 classes)
    '68': ([32, 64], 3, True, 1.7, 0.1, [128, 256, 320, 640, 1024], [14, 16, 20, 40, 160], [8, 16, 16, 16, 4],
           [1, 0, 1, 1, 0], False, 17565348),
    '39ds': ([24, 48], 1, False, 1.6, 0.05, [96, 320, 640, 1024], [16, 20, 64, 160], [4, 16, 8, 4], [1, 1, 1, 0],
             True, 3488228),
}


class HarDNet(nn.Module):
    def __init__(self, arch, classes=1000):
        super().__init__()
        first_ch, k2, max_pool, grmul, drop, ch_list, gr, n_layers, down, dw, _ = ARCHS[arch]
        self.base = nn.ModuleList([ConvLayer(3, first_ch[0], 3, 2), ConvLayer(first_ch[0], first_ch[1], k2)])
        self.base.append(nn.MaxPool2d(3, 2, 1) if max_pool else DWConvLayer(first_ch[1], first_ch[1], 2))
        ch = first_ch[1]
        for i in range(len(n_layers)):
            blk = HarDBlock(ch, gr[i], grmul, n_layers[i], dwconv=dw)
            self.base.append(blk)
            self.base.append(ConvLayer(blk.out_channels, ch_list[i], 1))
            ch = ch_list[i]
            if down[i]:
                self.base.append(nn.MaxPool2d(2, 2) if max_pool else DWConvLayer(ch, ch, 2))
        self.base.append(nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Dropout(drop),
                                       nn.Linear(ch, classes)))

    def forward(self, x):
        for layer in self.base:
            x = layer(x)
        return x


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--arch', default='68', choices=sorted(ARCHS))
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--image_size', type=int, default=224)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--steps', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--json', action='store_true')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = HarDNet(a.arch)
    expected = ARCHS[a.arch][-1]
    params = sum(t.numel() for t in model.parameters())
    if expected is not None and params != expected:
        raise SystemExit(f'torch_hardnet_train.py: HarDNet{a.arch} has {params} parameters, the official has {expected}')
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-5)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(a.batch, 3, a.image_size, a.image_size)
    y = torch.arange(a.batch) % 1000
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    r = {'arch': f'HarDNet{a.arch}', 'batch': a.batch, 'image_size': a.image_size, 'threads': a.threads,
         'train_ips': a.batch / step, 'train_step_s': step, 'torch': torch.__version__}
    if a.json:
        print(json.dumps(r))
    else:
        print(f"{r['arch']} batch {a.batch} @{a.image_size}, torch {torch.__version__}, {a.threads} threads: "
              f"train {r['train_ips']:.2f} images/s ({step * 1000:.0f} ms/step)")


if __name__ == '__main__':
    main()
