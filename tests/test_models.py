"""Model parts: shapes, gradients, the fusion formula, graph locality, spectral warping."""

import numpy as np
import pytest
import torch

from pipeline.models.appearance import AppearanceEncoder
from pipeline.models.fusion import AttentionFusion
from pipeline.models.gcn import (
    ContextGCN,
    GCNConfig,
    GraphConv,
    normalize_keypoints,
    normalized_adjacency,
    partitioned_adjacency,
    with_bones,
)
from pipeline.models.separators import MODELS, ModelConfig, build_model
from pipeline.models.spectral import unwarp, warp
from pipeline.models.unet import AudioUNet, UNetConfig
from pipeline.pose import layout

SMALL = ModelConfig(
    unet=UNetConfig(depth=5, base=8), gcn=GCNConfig(channels=(16, 32), strides=(2, 2)), appearance_dim=8
)


def _grads_everywhere(module: torch.nn.Module) -> None:
    missing = [
        n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())
    ]
    assert not missing, f"no gradient reached {missing[:5]}"


def test_fusion_equals_the_formula():
    torch.manual_seed(0)
    fusion = AttentionFusion(dim=6, hidden=5)
    a, v = torch.randn(2, 4, 6), torch.randn(2, 7, 6)
    z = fusion(a, v).detach().numpy()
    an, vn = a.numpy().astype(np.float64), v.numpy().astype(np.float64)
    s = an @ vn.transpose(0, 2, 1) / np.sqrt(6)
    p = np.exp(s - s.max(-1, keepdims=True))
    h = (p / p.sum(-1, keepdims=True)) @ vn + an
    w1, b1 = fusion.mlp[0].weight.detach().numpy(), fusion.mlp[0].bias.detach().numpy()
    w2, b2 = fusion.mlp[2].weight.detach().numpy(), fusion.mlp[2].bias.detach().numpy()
    expected = np.maximum(h @ w1.T + b1, 0) @ w2.T + b2 + h
    assert np.allclose(z, expected, atol=1e-5)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[:, 3:] = False
    assert torch.allclose(fusion(a, v, mask), fusion(a, v[:, :3]), atol=1e-6)  # padding is ignored


def test_graph_conv_mixes_only_neighbours():
    torch.manual_seed(0)
    conv = GraphConv(3, 4, normalized_adjacency())
    x = torch.randn(1, 3, 5, layout.NUM_JOINTS)
    joint = layout.INDEX["LElbow"]
    x2 = x.clone()
    x2[0, :, :, joint] += 1.0
    changed = (conv(x2) - conv(x)).abs().sum(dim=(0, 1, 2)) > 1e-6
    neighbours = {joint} | {b for a, b in layout.EDGES if a == joint} | {a for a, b in layout.EDGES if b == joint}
    assert (
        set(np.flatnonzero(changed.numpy())) == neighbours == {joint, layout.INDEX["LShoulder"], layout.INDEX["LWrist"]}
    )


def test_spatial_partitions_split_the_adjacency_and_can_read_a_bend():
    """ST-GCN's subsets give a joint, its neighbours nearer the neck and those farther off their own
    weights; with one shared weight (uniform) a layer is a positive average of neighbours and cannot
    output a finger joint's offset from its parent (a bend), with subsets it can, exactly."""
    spatial, uniform = partitioned_adjacency("spatial"), partitioned_adjacency("uniform")
    assert spatial.shape == (3, 61, 61) and torch.allclose(spatial.sum(0), uniform[0])
    joint = layout.LEFT_HAND.start + 7  # index finger, third joint: a parent and a child
    parent = int(layout.parents()[joint])
    x = torch.randn(500, layout.NUM_JOINTS, dtype=torch.float64)
    target = x[:, joint] - x[:, parent]
    residual = {}
    for name, adjacency in (("uniform", uniform), ("spatial", spatial)):
        features = torch.einsum("nj,kj->nk", x, adjacency[:, :, joint].double())  # one per subset
        w = torch.linalg.lstsq(features, target[:, None]).solution
        residual[name] = float((features @ w)[:, 0].sub(target).pow(2).mean() / target.pow(2).mean())
    assert residual["spatial"] < 1e-10 and residual["uniform"] > 0.3
    conv = GraphConv(2, 5, spatial)
    assert conv(torch.randn(1, 2, 4, 61)).shape == (1, 5, 4, 61)
    with pytest.raises(ValueError, match="unknown GCN partitions"):
        partitioned_adjacency("distance")


def test_bones_are_offsets_from_the_parent_and_zero_where_a_joint_is_missing():
    parent = torch.from_numpy(layout.parents())
    kp = torch.rand(2, 3, 61, 3) * 100
    kp[..., 2] = 0.9
    tip, mid = layout.RIGHT_HAND.start + 4, layout.RIGHT_HAND.start + 3  # thumb tip and the joint below it
    kp[1, 2, mid] = 0.0  # missing
    out = with_bones(kp, parent)
    assert out.shape == (2, 3, 61, 5) and torch.equal(out[..., :3], kp)
    assert torch.allclose(out[0, 0, tip, 3:], kp[0, 0, tip, :2] - kp[0, 0, mid, :2])
    assert (out[1, 2, tip, 3:] == 0).all() and (out[1, 2, mid, 3:] == 0).all()  # its own bone and its child's
    assert (out[..., layout.INDEX["Neck"], 3:] == 0).all()  # the root is its own parent
    moved = kp.clone()
    moved[..., :2] += torch.tensor([13.0, -7.0])
    assert torch.allclose(with_bones(moved, parent)[..., 3:], out[..., 3:], atol=1e-4)  # position-free
    gcn = ContextGCN(GCNConfig(channels=(8,), strides=(1,), partitions="spatial", bones=True), context_in=4)
    y = gcn(normalize_keypoints(kp), torch.randn(2, 4))
    assert y.shape == (2, 3, 8)
    y.pow(2).mean().backward()
    _grads_everywhere(gcn)


def test_gcn_shapes_stride_and_gradients():
    gcn = ContextGCN(GCNConfig(channels=(16, 32, 32), strides=(1, 2, 2)), context_in=10)
    kp = normalize_keypoints(torch.rand(3, 48, 61, 3) * 400)
    out = gcn(kp, torch.randn(3, 10))
    assert out.shape == (3, 12, 32)  # time 48 -> 24 -> 12
    out.pow(2).mean().backward()
    _grads_everywhere(gcn)


def test_normalize_keypoints_is_position_and_scale_free():
    kp = torch.rand(2, 10, 61, 3) * 100
    kp[..., 2] = 1.0
    kp[0, :, 5] = 0.0  # a missing joint
    moved = kp.clone()
    moved[..., :2] = kp[..., :2] * 3 + torch.tensor([50.0, -20.0])
    moved[0, :, 5] = 0.0
    a, b = normalize_keypoints(kp), normalize_keypoints(moved)
    assert torch.allclose(a, b, atol=1e-4)
    assert (a[0, :, 5] == 0).all()


def test_unet_and_appearance_shapes():
    unet = AudioUNet(UNetConfig(depth=7, base=4), out_channels=2)
    z, skips = unet.encode(torch.randn(1, 1, 256, 256))
    assert z.shape == (1, 4 * 8, 2, 2) and len(skips) == 6
    assert unet.decode(z, skips).shape == (1, 2, 256, 256)
    enc = AppearanceEncoder(out_dim=12)
    assert enc(torch.rand(2, 3, 64, 64)).shape == (2, 12)


def test_unet_can_keep_time_at_the_bottleneck():
    unet = AudioUNet(UNetConfig(depth=7, base=4, time_levels=3), out_channels=1)
    x = torch.randn(1, 1, 256, 256)
    z, skips = unet.encode(x)
    assert z.shape == (1, 32, 2, 32)  # frequency halved 7 times, time 3 times
    assert [s.shape[-1] for s in skips] == [128, 64, 32, 32, 32, 32]
    assert unet.decode(z, skips).shape == (1, 1, 256, 256)
    # a bottleneck step only sees its own stretch of time: changing the last second leaves early steps alone
    x2 = x.clone()
    x2[..., 212:] += 5.0
    z2, _ = unet.eval().encode(x2)
    z1, _ = unet.encode(x)
    changed = (z2 - z1).abs().amax(dim=(0, 1, 2)) > 1e-6
    assert not changed[:16].any() and changed[-1]


def test_fusion_time_prior_reads_the_motion_at_the_same_time():
    torch.manual_seed(0)
    d = AttentionFusion.distance(audio_tokens=8, audio_frames=4, visual_steps=8, device="cpu")
    assert d.shape == (8, 8) and torch.equal(d[:4], d[4:])  # two frequency rows, same times
    assert d[0].argmin() in (0, 1) and d[3].argmin() in (6, 7)  # audio step 0 spans visual steps 0-1
    fusion = AttentionFusion(dim=4, time_bias=True)
    with torch.no_grad():
        fusion.slope.fill_(20.0)  # a sharp prior
    a = torch.zeros(1, 4, 4)
    v = torch.eye(4)[None].repeat_interleave(2, dim=1)  # visual step 2k and 2k+1 carry one-hot k
    h = torch.softmax(-torch.nn.functional.softplus(fusion.slope) * d[:4][None], -1) @ v + a
    assert torch.allclose(h[0], torch.eye(4), atol=1e-3)  # each audio step reads its own time
    assert fusion(a, v, audio_frames=4).shape == (1, 4, 4)
    with pytest.raises(ValueError, match="audio_frames"):
        fusion(a, v)


@pytest.mark.parametrize("name", MODELS)
def test_models_on_a_coarser_spectrogram(name):
    cfg = ModelConfig(**{**SMALL.__dict__, "name": name, "input_scale": 2, "motion_bands": 6})
    model = build_model(cfg)
    out = model(torch.randn(2, 1, 256, 256), torch.rand(2, 2, 48, 61, 3) * 300, torch.rand(2, 2, 3, 64, 64))
    assert out.shape[-2:] == (256, 256)  # masks come back at the spectrogram's size
    if name == "music_gesture":  # the motion head: one envelope per person and motion step
        assert model.motion_prediction.shape == (2, 2, 12, 6)
        (out.mean() + model.motion_prediction.pow(2).mean()).backward()
        assert model.motion_head.weight.grad.abs().sum() > 0


def test_appearance_weights_from_a_file(tmp_path):
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    enc = AppearanceEncoder(out_dim=4, weights=str(path))
    assert torch.equal(enc.trunk[0].weight, net.conv1.weight)
    with pytest.raises(ValueError, match="missing.pth"):
        AppearanceEncoder(out_dim=4, weights=str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("name", MODELS)
def test_separators_shapes_and_gradients(name):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**SMALL.__dict__, "name": name})
    model = build_model(cfg)
    out = model(torch.randn(2, 1, 256, 256), torch.rand(2, 2, 48, 61, 3) * 300, torch.rand(2, 2, 3, 64, 64))
    assert out.shape == ((2, cfg.max_sources, 256, 256) if name == "audio_only" else (2, 2, 256, 256))
    out.sigmoid().mean().backward()
    _grads_everywhere(model)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_music_gesture_mask_depends_on_the_person():
    torch.manual_seed(0)
    model = build_model(SMALL).train()  # batch statistics: at init, eval-mode BN shrinks the signal to nothing
    mix = torch.randn(1, 1, 256, 256)
    base = torch.rand(61, 2) * 200
    t = torch.arange(48.0)[:, None, None]
    still = base.expand(48, 61, 2)
    moving = base + 40 * torch.sin(t / 2) * (torch.arange(61) >= 19)[None, :, None]  # hands busy, body still
    kp = torch.stack([still, moving])[None]
    kp = torch.cat([kp, torch.ones(1, 2, 48, 61, 1)], dim=-1)
    crops = torch.rand(1, 1, 3, 64, 64).expand(1, 2, -1, -1, -1)  # same look, different motion
    out = model(mix, kp, crops)
    assert (out[0, 0] - out[0, 1]).abs().mean() > 1e-3 * out.abs().mean()


def test_warp_round_trip():
    lin = torch.linspace(0, 1, 512).view(1, 1, 512, 1).expand(1, 1, 512, 16)
    back = unwarp(warp(lin))
    assert warp(lin).shape == (1, 1, 256, 16)
    assert (back - lin).abs()[0, 0, 20:].max() < 0.01  # smooth signals survive; the lowest bins are sparse


def test_joint_embedding_tells_the_gcn_which_joint_moves():
    """Without it (or a readout of all joints), graph convolutions share weights over joints and
    the joints are averaged, so a motion moved from one hand to the other reads much alike; the
    embedding joins each joint's identity to its input."""
    torch.manual_seed(0)
    kp = torch.zeros(1, 16, 61, 3)
    kp[..., 2] = 1.0
    t = torch.arange(16.0)
    left, right = kp.clone(), kp.clone()
    left[0, :, 19, 1] = torch.sin(t)  # a joint of one hand moves
    right[0, :, 40, 1] = torch.sin(t)  # the same motion on a joint of the other hand
    gap = {}
    for emb, readout in ((0, "mean"), (8, "mean"), (0, "joints")):
        cfg = GCNConfig(channels=(16,), strides=(1,), joint_embedding=emb, dropout=0.0, readout=readout)
        gcn = ContextGCN(cfg, context_in=4).eval()
        ctx = torch.zeros(1, 4)
        with torch.no_grad():
            gap[emb, readout] = float((gcn(left, ctx) - gcn(right, ctx)).abs().mean())
    assert gap[8, "mean"] > 2 * gap[0, "mean"]
    assert gap[0, "joints"] > 2 * gap[0, "mean"]  # a readout of all joints keeps which one moved
    with pytest.raises(ValueError, match="unknown GCN readout"):
        ContextGCN(GCNConfig(readout="max"), context_in=4)


def test_visual_input_and_mask_prior_paths():
    torch.manual_seed(0)
    base = {**SMALL.__dict__, "input_scale": 2, "motion_bands": 6}
    mix, kp, crops = torch.randn(2, 1, 256, 256), torch.rand(2, 2, 48, 61, 3) * 300, torch.rand(2, 2, 3, 64, 64)
    # the prior starts at zero, so a fresh model's masks are the paper model's
    plain = build_model(ModelConfig(**base)).eval()
    prior = build_model(ModelConfig(**{**base, "mask_prior": True})).eval()
    prior.load_state_dict(plain.state_dict(), strict=False)
    assert torch.allclose(plain(mix, kp, crops), prior(mix, kp, crops))
    out = prior.train()(mix, kp, crops)
    out.mean().backward()
    assert prior.prior.weight.grad.abs().sum() > 0
    # the motion's envelope map is read by the U-Net: its gradient reaches the motion head from the mask
    vis = build_model(ModelConfig(**{**base, "visual_input": True})).train()
    assert vis.unet.input_norm.num_features == 2
    vis(mix, kp, crops).sigmoid().mean().backward()
    assert vis.motion_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="motion_bands"):
        build_model(ModelConfig(**{**base, "motion_bands": 0, "visual_input": True}))


def test_visual_others_lets_a_persons_mask_read_the_others_motion():
    """Without competing masks, a person's mask logits ignore the others' keypoints unless the
    others' envelope map is an input (``visual_others``)."""
    torch.manual_seed(0)
    base = {**SMALL.__dict__, "input_scale": 2, "motion_bands": 6, "visual_input": True}
    mix, crops = torch.randn(1, 1, 256, 256), torch.rand(1, 2, 3, 64, 64)
    kp = torch.rand(1, 2, 48, 61, 3) * 300
    other = kp.clone()
    other[:, 1, :, :, :2] = torch.rand(48, 61, 2) * 300  # only person 1 moves differently
    for others in (False, True):
        model = build_model(ModelConfig(**{**base, "visual_others": others})).eval()  # no batch statistics
        assert model.unet.input_norm.num_features == 2 + others
        a, b = model(mix, kp, crops), model(mix, other, crops)
        assert (a[0, 1] - b[0, 1]).abs().max() > 1e-5  # person 1's own mask follows their motion
        assert ((a[0, 0] - b[0, 0]).abs().max() > 1e-5) == others, (a[0, 0] - b[0, 0]).abs().max()
    alone = build_model(ModelConfig(**{**base, "visual_others": True})).eval()
    assert alone(mix, kp[:, :1], crops[:, :1]).shape[1] == 1  # a person alone: the others' map is zeros
    with pytest.raises(ValueError, match="visual_others needs visual_input"):
        build_model(ModelConfig(**{**base, "visual_input": False, "visual_others": True}))


def test_competitive_masks_share_every_bin():
    from pipeline.models.separators import compete

    torch.manual_seed(0)
    scores = torch.randn(2, 3, 8, 5)
    masks = torch.sigmoid(compete(scores))
    assert torch.allclose(masks, torch.softmax(scores, dim=1), atol=1e-6)  # the softmax over persons
    assert torch.sigmoid(compete(scores[:, :1])).min() > 0.999  # a solo keeps the whole mixture
    mix, kp, crops = torch.randn(2, 1, 256, 256), torch.rand(2, 2, 48, 61, 3) * 300, torch.rand(2, 2, 3, 64, 64)
    for name in ("music_gesture", "sound_of_pixels"):
        model = build_model(ModelConfig(**{**SMALL.__dict__, "name": name, "competitive": True})).train()
        out = model(mix, kp, crops)
        assert torch.allclose(out.sigmoid().sum(dim=1), torch.ones(2, 256, 256), atol=1e-5), name
        out.sigmoid()[:, 0].mean().backward()
        _grads_everywhere(model)


def test_fit_shares_recovers_each_persons_level_from_the_mixture():
    """Envelopes with each band's mean removed cannot say who is louder; scaled to the mixture's band
    energies they give each person's true share, here a player 10x louder than the other."""
    from pipeline.models.separators import fit_shares

    torch.manual_seed(0)
    steps, bands = 40, 6
    sound = torch.rand(1, 2, bands, steps) + 0.05  # each person's band energies over time
    gains = torch.tensor([10.0, 1.0])[None, :, None, None] * (torch.rand(1, 2, bands, 1) + 0.5)
    mix = (gains * sound).sum(1, keepdim=True)  # (1, 1, bands, steps): pooling to this size keeps it
    envelope = torch.log(sound).transpose(2, 3)
    envelope = envelope - envelope.mean(dim=2, keepdim=True)  # what the motion head predicts: no level
    shares = fit_shares(torch.log(mix), envelope)[:, :, 0]  # the model's fit: regularised, a few updates
    truth = gains * sound / mix
    assert shares.shape == (1, 2, bands, steps)
    torch.testing.assert_close(shares.sum(1), torch.ones(1, bands, steps))
    assert (shares - truth).abs().mean() < 0.05, (shares - truth).abs().mean()
    assert shares[0, 0].mean() > 0.8  # the loud player owns most of the mixture
    naive = torch.softmax(envelope.transpose(2, 3), dim=1)  # the envelopes compared as they are
    assert (naive - truth).abs().mean() > 5 * (shares - truth).abs().mean()
    converged = fit_shares(torch.log(mix), envelope, iterations=200)[:, :, 0]  # the updates reach the exact gains
    assert (converged - truth).abs().max() < 0.01, (converged - truth).abs().max()
    half = fit_shares(torch.log(mix).half(), envelope.half())  # as mixed precision on a GPU hands them over
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, fit_shares(torch.log(mix), envelope), atol=0.01, rtol=0)
    alone = fit_shares(torch.log(mix), envelope[:, :1])
    torch.testing.assert_close(alone, torch.ones_like(alone))


def test_level_fit_adds_a_share_channel_and_a_prior_the_loss_reaches():
    torch.manual_seed(0)
    base = {**SMALL.__dict__, "input_scale": 2, "motion_bands": 6, "visual_input": True, "competitive": True}
    model = build_model(ModelConfig(**{**base, "level_fit": True}))
    assert model.unet.input_norm.num_features == 3  # mixture, own envelope map, own share
    assert ModelConfig.from_dict(ModelConfig(**{**base, "level_fit": True}).to_dict()).level_fit
    mix, crops, kp = torch.randn(2, 1, 256, 256), torch.rand(2, 2, 3, 64, 64), torch.rand(2, 2, 48, 61, 3) * 300
    logits = model(mix, kp, crops)
    torch.testing.assert_close(torch.sigmoid(logits).sum(1), torch.ones(2, 256, 256))
    logits.sigmoid()[:, 0].mean().backward()
    assert model.level_weight.grad.abs() > 0
    assert model.motion_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="level_fit needs visual_input"):
        build_model(ModelConfig(**{**base, "visual_input": False, "level_fit": True}))


def test_instrument_context_gives_the_gcn_only_an_instrument_posterior():
    """train.instrument_context: the crop reaches the motion branch only as probabilities over the known
    instruments (a softmax of a head on the appearance), and the head's logits are kept for their loss."""
    from pipeline.instruments import CODES

    torch.manual_seed(0)
    base = {**SMALL.__dict__, "input_scale": 2, "motion_bands": 6, "visual_input": True, "competitive": True}
    model = build_model(ModelConfig(**{**base, "instrument_context": True}))
    assert model.gcn.context.in_features == len(CODES)
    assert ModelConfig.from_dict(ModelConfig(**{**base, "instrument_context": True}).to_dict()).instrument_context
    seen = []
    model.gcn.context.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    mix, crops, kp = torch.randn(2, 1, 256, 256), torch.rand(2, 3, 3, 64, 64), torch.rand(2, 3, 48, 61, 3) * 300
    logits = model(mix, kp, crops)
    assert model.instrument_logits.shape == (2, 3, len(CODES))
    (context,) = seen
    torch.testing.assert_close(context, torch.softmax(model.instrument_logits.flatten(0, 1), -1))
    torch.nn.functional.cross_entropy(model.instrument_logits.flatten(0, 1), torch.arange(6) % len(CODES)).backward(
        retain_graph=True
    )
    assert float(model.instrument_head.weight.grad.abs().sum()) > 0
    assert float(model.appearance.proj.weight.grad.abs().sum()) > 0
    logits.sigmoid()[:, 0].mean().backward()  # the masks reach the head too, through the GCN
    plain = build_model(ModelConfig(**base))
    assert plain.instrument_head is None and plain.gcn.context.in_features == base["appearance_dim"]
