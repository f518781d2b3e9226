"""DavamModel: fused recurrence, incremental decoding, no bypass of the quantizer."""

import torch

from helpers import assert_incremental_matches_full, SENTENCES, make_batch, tiny_model


def encode(model, batch):
    return model.encoder(batch["net_input"]["src_tokens"], batch["net_input"]["src_lengths"])


def encoded_fixture():
    """(model in eval mode, dictionary, encoder output, decoder input) for SENTENCES."""
    model, d = tiny_model()
    model.eval()
    batch = make_batch(d, SENTENCES)
    return model, d, encode(model, batch), batch["net_input"]["prev_output_tokens"]


def test_fused_recurrence_equals_plain_lstmcell_path():
    model, _, enc, prev = encoded_fixture()
    fused, _ = model.decoder(prev, enc)
    plain = model.decoder.forward_unfused(prev, enc)
    assert torch.allclose(fused, plain, atol=1e-6), (fused - plain).abs().max()


def test_incremental_decoding_equals_full_decoding_with_reordering():
    model, _, enc, prev = encoded_fixture()
    full, _ = model.decoder(prev, enc)
    # incremental, with a beam-search style reorder at every step
    order = torch.tensor([2, 0, 3, 1])
    assert_incremental_matches_full(model, enc, prev, full, order)


def test_decoder_sees_input_only_through_codes():
    model, d, enc, prev = encoded_fixture()
    batch = make_batch(d, SENTENCES)
    out, _ = model.decoder(prev, enc)
    assert len(set(enc["codes"][0][enc["codes"][0] >= 0].tolist())) > 1  # several codes in use

    # 1) change the encoder states (LSTM and projection weights) slightly: same codes,
    #    bit-identical decoder output
    with torch.no_grad():
        model.encoder.bottleneck.to_code.weight.mul_(1.0001)
        for p in model.encoder.lstm.parameters():
            p.add_(1e-5)
    enc2 = encode(model, batch)
    assert torch.equal(enc2["codes"][0], enc["codes"][0])
    out2, _ = model.decoder(prev, enc2)
    assert torch.equal(out, out2)

    # 2) the decoder output is a function of the code indices alone
    codes = enc["codes"][0]
    only_codes = {
        "latents": [model.encoder.bottleneck.quantizer.embed_codes(codes)],
        "encoder_padding_mask": [codes.lt(0)],
        "src_lengths": [codes.ge(0).sum(1)],
    }
    out3, _ = model.decoder(prev, only_codes)
    assert torch.equal(out, out3)


def test_padding_never_changes_model_outputs():
    model, d = tiny_model()
    model.eval()
    a = make_batch(d, SENTENCES)
    b = make_batch(d, SENTENCES, extra_pad=5)
    out_a, extra_a = model(**a["net_input"])
    out_b, extra_b = model(**b["net_input"])
    L = out_a.size(1)
    mask = a["target"].ne(d.pad())
    assert torch.allclose(out_a[mask], out_b[:, :L][mask], atol=1e-6)
    assert torch.allclose(extra_a["commitment"], extra_b["commitment"])
    assert torch.equal(extra_a["code_counts"], extra_b["code_counts"])


def test_left_padded_input_is_encoded_like_right_padded():
    from fairseq import utils

    model, d = tiny_model()
    model.eval()
    batch = make_batch(d, SENTENCES)
    src = batch["net_input"]["src_tokens"]
    left = utils.convert_padding_direction(src, d.pad(), right_to_left=True)
    assert torch.equal(encode(model, batch)["codes"][0], model.encoder(left)["codes"][0])


def test_gradients_reach_encoder_through_straight_through_estimator():
    model, d = tiny_model()
    model.train()
    batch = make_batch(d, SENTENCES)
    out, extra = model(**batch["net_input"])
    out.logsumexp(-1).sum().backward()  # reconstruction-like term only, no commitment
    assert model.encoder.lstm.weight_ih_l0.grad.abs().sum() > 0
    assert model.encoder.bottleneck.to_code.weight.grad.abs().sum() > 0
