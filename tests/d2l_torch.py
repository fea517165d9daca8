"""d2l's PyTorch networks (the chapter's code, written with torch.nn), at d2l's input sizes or at
28x28 with the stems jconv uses there: the oracles of the zoo's parity tests
(tests/test_zoo_parity.py, tests/test_models.py) and the PyTorch peers of benchmarks/models.py."""


def networks(torch, num_classes=10, small=False):
    """``{name: (builder, input shape (C, H, W))}``; each builder returns a fresh torch module.

    ``small=True`` gives every network at 1x28x28 with jconv's adaptation for that size (AlexNet's
    and NiN's first convolution 3x3, stride 1, padding 1; VGG without its fifth pool; DenseNet
    without its stem pool); the others are d2l's networks unchanged."""
    tnn, F = torch.nn, torch.nn.functional

    def lenet(modern=False):
        act, pool = (tnn.ReLU, tnn.MaxPool2d) if modern else (tnn.Sigmoid, tnn.AvgPool2d)
        return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), act(), pool(2, 2), tnn.Conv2d(6, 16, 5), act(),
                              pool(2, 2), tnn.Flatten(), tnn.Linear(400, 120), act(), tnn.Linear(120, 84), act(),
                              tnn.Linear(84, num_classes))

    def bn_lenet():
        return tnn.Sequential(
            tnn.Conv2d(1, 6, 5), tnn.BatchNorm2d(6), tnn.Sigmoid(), tnn.AvgPool2d(2, 2),
            tnn.Conv2d(6, 16, 5), tnn.BatchNorm2d(16), tnn.Sigmoid(), tnn.AvgPool2d(2, 2),
            tnn.Flatten(), tnn.Linear(256, 120), tnn.BatchNorm1d(120), tnn.Sigmoid(),
            tnn.Linear(120, 84), tnn.BatchNorm1d(84), tnn.Sigmoid(), tnn.Linear(84, num_classes))

    def alexnet():
        return tnn.Sequential(
            tnn.Conv2d(1, 96, *((3, 1, 1) if small else (11, 4, 1))), tnn.ReLU(), tnn.MaxPool2d(3, 2),
            tnn.Conv2d(96, 256, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(3, 2),
            tnn.Conv2d(256, 384, 3, padding=1), tnn.ReLU(), tnn.Conv2d(384, 384, 3, padding=1), tnn.ReLU(),
            tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(3, 2), tnn.Flatten(),
            tnn.Linear(256 * (2 * 2 if small else 5 * 5), 4096), tnn.ReLU(), tnn.Dropout(0.5),
            tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(0.5), tnn.Linear(4096, num_classes))

    def vgg11():
        layers, c = [], 1
        for i, (n, o) in enumerate(((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))):
            for _ in range(n):
                layers += [tnn.Conv2d(c, o, 3, padding=1), tnn.ReLU()]
                c = o
            if not (small and i == 4):  # 28 -> 14 -> 7 -> 3 -> 1: the fifth pool is left out
                layers.append(tnn.MaxPool2d(2, 2))
        return tnn.Sequential(*layers, tnn.Flatten(), tnn.Linear(512 * (1 if small else 7 * 7), 4096), tnn.ReLU(),
                              tnn.Dropout(0.5), tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(0.5),
                              tnn.Linear(4096, num_classes))

    def nin_block(i, o, k, s, p):
        return tnn.Sequential(tnn.Conv2d(i, o, k, s, p), tnn.ReLU(), tnn.Conv2d(o, o, 1), tnn.ReLU(),
                              tnn.Conv2d(o, o, 1), tnn.ReLU())

    def nin():
        return tnn.Sequential(nin_block(1, 96, *((3, 1, 1) if small else (11, 4, 0))), tnn.MaxPool2d(3, 2),
                              nin_block(96, 256, 5, 1, 2), tnn.MaxPool2d(3, 2), nin_block(256, 384, 3, 1, 1),
                              tnn.MaxPool2d(3, 2), tnn.Dropout(0.5),
                              nin_block(384, num_classes, 3, 1, 1), tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten())

    class Inception(tnn.Module):
        def __init__(self, i, c1, c2, c3, c4):
            super().__init__()
            self.b1_1 = tnn.Conv2d(i, c1, 1)
            self.b2_1, self.b2_2 = tnn.Conv2d(i, c2[0], 1), tnn.Conv2d(c2[0], c2[1], 3, padding=1)
            self.b3_1, self.b3_2 = tnn.Conv2d(i, c3[0], 1), tnn.Conv2d(c3[0], c3[1], 5, padding=2)
            self.b4_1, self.b4_2 = tnn.MaxPool2d(3, 1, 1), tnn.Conv2d(i, c4, 1)

        def forward(self, x):
            b1 = F.relu(self.b1_1(x))
            b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
            b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
            b4 = F.relu(self.b4_2(self.b4_1(x)))
            return torch.cat((b1, b2, b3, b4), dim=1)

    def googlenet():
        pool = lambda: tnn.MaxPool2d(3, 2, 1)  # noqa: E731
        return tnn.Sequential(
            tnn.Conv2d(1, 64, 7, 2, 3), tnn.ReLU(), pool(),
            tnn.Conv2d(64, 64, 1), tnn.ReLU(), tnn.Conv2d(64, 192, 3, padding=1), tnn.ReLU(), pool(),
            Inception(192, 64, (96, 128), (16, 32), 32), Inception(256, 128, (128, 192), (32, 96), 64), pool(),
            Inception(480, 192, (96, 208), (16, 48), 64), Inception(512, 160, (112, 224), (24, 64), 64),
            Inception(512, 128, (128, 256), (24, 64), 64), Inception(512, 112, (144, 288), (32, 64), 64),
            Inception(528, 256, (160, 320), (32, 128), 128), pool(),
            Inception(832, 256, (160, 320), (32, 128), 128), Inception(832, 384, (192, 384), (48, 128), 128),
            tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(), tnn.Linear(1024, num_classes))

    class Residual(tnn.Module):  # d2l's registration order: conv1, conv2, conv3, bn1, bn2
        def __init__(self, i, o, use_1x1conv=False, strides=1):
            super().__init__()
            self.conv1 = tnn.Conv2d(i, o, 3, strides, 1)
            self.conv2 = tnn.Conv2d(o, o, 3, padding=1)
            self.conv3 = tnn.Conv2d(i, o, 1, strides) if use_1x1conv else None
            self.bn1, self.bn2 = tnn.BatchNorm2d(o), tnn.BatchNorm2d(o)

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(y + (self.conv3(x) if self.conv3 is not None else x))

    def resnet18():
        layers, c = [tnn.Conv2d(1, 64, 7, 2, 3), tnn.BatchNorm2d(64), tnn.ReLU(), tnn.MaxPool2d(3, 2, 1)], 64
        for i, o in enumerate((64, 128, 256, 512)):
            layers += [Residual(c, o, i > 0, 2 if i > 0 else 1), Residual(o, o)]
            c = o
        return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(), tnn.Linear(512, num_classes))

    class ResNeXtBlock(tnn.Module):  # d2l's, registration order conv1-3, bn1-3, conv4, bn4
        def __init__(self, i, num_channels, groups, bot_mul, use_1x1conv=False, strides=1):
            super().__init__()
            bot = int(round(num_channels * bot_mul))
            self.conv1 = tnn.Conv2d(i, bot, 1)
            self.conv2 = tnn.Conv2d(bot, bot, 3, strides, 1, groups=bot // groups)
            self.conv3 = tnn.Conv2d(bot, num_channels, 1)
            self.bn1, self.bn2, self.bn3 = tnn.BatchNorm2d(bot), tnn.BatchNorm2d(bot), tnn.BatchNorm2d(num_channels)
            self.conv4 = tnn.Conv2d(i, num_channels, 1, strides) if use_1x1conv else None
            self.bn4 = tnn.BatchNorm2d(num_channels) if use_1x1conv else None

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = F.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            if self.conv4 is not None:
                x = self.bn4(self.conv4(x))
            return F.relu(y + x)

    def resnext():  # jconv's ResNeXt: ResNet-18's layout of ResNeXt blocks (group width 16, no bottleneck)
        layers, c = [tnn.Conv2d(1, 64, 7, 2, 3), tnn.BatchNorm2d(64), tnn.ReLU(), tnn.MaxPool2d(3, 2, 1)], 64
        for i, o in enumerate((64, 128, 256, 512)):
            layers += [ResNeXtBlock(c, o, 16, 1, i > 0, 2 if i > 0 else 1), ResNeXtBlock(o, o, 16, 1)]
            c = o
        return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(), tnn.Linear(512, num_classes))

    def regnet():  # d2l's RegNetX32: AnyNet(((4, 32, 16, 1), (6, 80, 16, 1)), stem 32)
        layers, c = [tnn.Conv2d(1, 32, 3, 2, 1), tnn.BatchNorm2d(32), tnn.ReLU()], 32
        for depth, o in ((4, 32), (6, 80)):
            layers += [ResNeXtBlock(c, o, 16, 1, True, 2)] + [ResNeXtBlock(o, o, 16, 1) for _ in range(depth - 1)]
            c = o
        return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d((1, 1)), tnn.Flatten(), tnn.Linear(80, num_classes))

    class DenseBlock(tnn.Module):
        def __init__(self, num_convs, i, growth):
            super().__init__()
            self.net = tnn.Sequential(*(tnn.Sequential(tnn.BatchNorm2d(i + k * growth), tnn.ReLU(),
                                                       tnn.Conv2d(i + k * growth, growth, 3, padding=1))
                                        for k in range(num_convs)))

        def forward(self, x):
            for blk in self.net:
                x = torch.cat((x, blk(x)), dim=1)
            return x

    def densenet():  # at 28x28 without the stem pool (28 -> 14 -> 7 -> 3 -> 1)
        layers, c = [tnn.Conv2d(1, 64, 7, 2, 3), tnn.BatchNorm2d(64), tnn.ReLU()], 64
        layers += [] if small else [tnn.MaxPool2d(3, 2, 1)]
        for i in range(4):
            layers.append(DenseBlock(4, c, 32))
            c += 4 * 32
            if i != 3:
                layers += [tnn.BatchNorm2d(c), tnn.ReLU(), tnn.Conv2d(c, c // 2, 1), tnn.AvgPool2d(2, 2)]
                c //= 2
        return tnn.Sequential(*layers, tnn.BatchNorm2d(c), tnn.ReLU(), tnn.AdaptiveAvgPool2d((1, 1)),
                              tnn.Flatten(), tnn.Linear(c, num_classes))

    nets = {
        "lenet": (lambda: lenet(modern=True), (1, 28, 28)),
        "lenet-classic": (lenet, (1, 28, 28)),
        "bn-lenet": (bn_lenet, (1, 28, 28)),
        "alexnet": (alexnet, (1, 224, 224)),
        "vgg11": (vgg11, (1, 224, 224)),
        "nin": (nin, (1, 224, 224)),
        "googlenet": (googlenet, (1, 96, 96)),
        "resnet18": (resnet18, (1, 96, 96)),
        "resnext": (resnext, (1, 96, 96)),
        "regnet": (regnet, (1, 96, 96)),
        "densenet": (densenet, (1, 96, 96)),
    }
    return {name: (make, (1, 28, 28) if small else shape) for name, (make, shape) in nets.items()}
