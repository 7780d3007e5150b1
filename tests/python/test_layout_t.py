"""Layout T (a batch per request: one ciphertext per input feature, one digit per slot)
end to end through the official tritonclient, against real Triton with heinfer's backend
and against `heinfer serve` (the `server` fixture runs both): 4,096 digits encrypted with
`heinfer batch encrypt`, one request, decrypted with `heinfer batch decrypt`, top-1
agreement with onnxruntime. Then bad input: a batch larger than the model's, layout
mismatches, mixed key ids — each a 400 / INVALID_ARG to that request, the server alive.

Images/s end to end and for evaluation alone are printed (run with -s), not asserted."""
import os
import struct
import subprocess
import time

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from conftest import BATCH_TIMEOUT_S, DATA, ROOT

BATCH = 4096


def read_elements(path):
    """The elements of a `heinfer encrypt`/`batch` ciphertext file: magic HECT, version,
    kind, count, then each element's u32 length and bytes."""
    b = open(path, "rb").read()
    assert b[:4] == b"HECT"
    (count,) = struct.unpack_from("<I", b, 8)
    pos, out = 12, []
    for _ in range(count):
        (n,) = struct.unpack_from("<I", b, pos)
        out.append(b[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def write_result(path, elems):
    with open(path, "wb") as f:
        f.write(b"HECT" + struct.pack("<HHI", 1, 2, len(elems)))
        for e in elems:
            f.write(struct.pack("<I", len(e)))
            f.write(e)


def run(heinfer_bin, *args):
    r = subprocess.run([heinfer_bin, *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def bytes_input(name, elements):
    t = th.InferInput(name, [len(elements)], "BYTES")
    t.set_data_from_numpy(np.array(elements, dtype=np.object_), binary_data=True)
    return t


def infer(server, inputs):
    cli = th.InferenceServerClient(server.http_url, connection_timeout=600, network_timeout=600)
    out = [th.InferRequestedOutput("ENCRYPTED_OUTPUT", binary_data=True)]
    got = cli.infer(server.model, inputs, outputs=out).as_numpy("ENCRYPTED_OUTPUT")
    return [] if got is None else got


@pytest.fixture(scope="module")
def batch(model_repo, heinfer_bin, tmp_path_factory):
    """4,096 digits (load_digits' 1,797, then copies with pixel noise), onnxruntime's
    logits, a layout-T key and the encrypted request."""
    d = tmp_path_factory.mktemp("layout_t")
    base = np.concatenate([np.load(os.path.join(DATA, "digits_test_img.npy")),
                           np.load(os.path.join(DATA, "digits_train_img.npy"))])
    rng = np.random.default_rng(0)
    reps = [base] + [np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1) for _ in range(BATCH // len(base) + 1)]
    x = np.concatenate(reps)[:BATCH].astype(np.float64)
    np.save(d / "x.npy", x)
    ref = ort.InferenceSession(os.path.join(ROOT, "models", "digits_cryptonets.onnx"))
    logits = ref.run(None, {ref.get_inputs()[0].name: x.astype(np.float32)})[0]
    model_dir = os.path.join(model_repo, "digits_cryptonets")
    key_id = run(heinfer_bin, "batch", "keygen", model_dir, "--secret-key", d / "t.sk", "--keys-out",
                 d / "t.keys").strip()
    t = time.perf_counter()
    run(heinfer_bin, "batch", "encrypt", model_dir, "--secret-key", d / "t.sk", "--input", d / "x.npy",
        "-o", d / "req.bin")
    encrypt_s = time.perf_counter() - t
    return dict(dir=d, model_dir=model_dir, logits=logits, encrypt_s=encrypt_s,
                req=read_elements(d / "req.bin"), keys=open(d / "t.keys", "rb").read(), key_id=key_id.encode())


def test_spec_lists_both_layouts(model_repo, heinfer_bin):
    import json
    spec = json.loads(run(heinfer_bin, "inspect", os.path.join(model_repo, "digits_cryptonets"), "--client-spec"))
    layouts = {c["layout"]: c for c in spec["layouts"]}
    assert {"L", "T"} <= set(layouts)  # and M (test_layout_m.py)
    assert layouts["T"]["max_batch"] >= BATCH and layouts["L"]["max_batch"] == 1
    assert layouts["T"]["request_bytes_per_sample"] < layouts["L"]["request_bytes_per_sample"]
    assert spec["throughput"]["features"] == 64 and spec["throughput"]["outputs"] == 10
    assert all(q < 2 ** 31 for q in spec["throughput"]["params"]["q"])


def test_batch_of_4096_agrees_with_onnxruntime(server, batch, heinfer_bin):
    d = batch["dir"]
    req = batch["req"]
    assert len(req) == 64
    t = time.perf_counter()
    out = infer(server, [bytes_input("ENCRYPTED_INPUT", req), bytes_input("EVALUATION_KEYS", [batch["keys"]]),
                         bytes_input("KEY_ID", [batch["key_id"]])])
    roundtrip_s = time.perf_counter() - t
    write_result(d / f"res_{server.kind}.bin", list(out))
    t = time.perf_counter()
    run(heinfer_bin, "batch", "decrypt", batch["model_dir"], "--secret-key", d / "t.sk", "--samples", BATCH,
        d / f"res_{server.kind}.bin", "-o", d / f"y_{server.kind}.npy")
    decrypt_s = time.perf_counter() - t
    y = np.load(d / f"y_{server.kind}.npy")
    agree = float(np.mean(np.argmax(y, 1) == np.argmax(batch["logits"], 1)))
    ev = run(heinfer_bin, "batch", "evaluate", batch["model_dir"], "--keys", d / "t.keys", d / "req.bin",
             "-o", d / "res_local.bin")
    import json
    eval_s = json.loads(ev)["evaluate_s"]
    total = batch["encrypt_s"] + roundtrip_s + decrypt_s
    mb = sum(len(c) for c in req) / 1e6
    print(f"\n[{server.kind}] layout T, {BATCH} digits: agreement {agree:.4f}; end to end {BATCH / total:.0f} images/s "
          f"(encrypt {batch['encrypt_s']:.2f} s, transfer + evaluate {roundtrip_s:.2f} s, decrypt {decrypt_s:.2f} s; "
          f"request {mb:.1f} MB = {1e6 * mb / BATCH:.0f} B/image); evaluation alone {BATCH / eval_s:.0f} images/s")
    assert agree >= 0.995, agree
    assert np.max(np.abs(y - batch["logits"])) < 0.5


def expect_400(server, inputs, *needles):
    with pytest.raises(InferenceServerException) as e:
        infer(server, inputs)
    msg = str(e.value)
    assert "400" in msg or "INVALID" in msg.upper() or "invalid" in msg, msg
    for n in needles:
        assert n in msg, msg
    assert server.alive()
    return msg


def test_bad_batches_are_refused_and_the_server_lives_on(server, batch, heinfer_bin, tmp_path):
    req, keys, kid = batch["req"], batch["keys"], bytes_input("KEY_ID", [batch["key_id"]])
    key_id = run(heinfer_bin, "batch", "keygen", batch["model_dir"], "--secret-key", tmp_path / "o.sk",
                 "--keys-out", tmp_path / "o.keys").strip()
    # A batch larger than the model's: the client refuses it, and two batches' ciphertexts
    # in one request are refused by the server.
    x = np.load(batch["dir"] / "x.npy")
    np.save(tmp_path / "big.npy", np.concatenate([x, x[:1]]))
    r = subprocess.run([heinfer_bin, "batch", "encrypt", batch["model_dir"], "--secret-key", batch["dir"] / "t.sk",
                        "--input", tmp_path / "big.npy", "--samples", str(BATCH + 1), "-o", tmp_path / "big.bin"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and f"larger than layout T's {BATCH} per request" in r.stderr, r.stderr
    expect_400(server, [bytes_input("ENCRYPTED_INPUT", req + req), bytes_input("EVALUATION_KEYS", [keys]), kid],
               "ENCRYPTED_INPUT holds 128")
    # Layout mismatch: the layout-L bundle with a T batch; an L ciphertext inside a T batch.
    l_id = run(heinfer_bin, "keygen", batch["model_dir"], "--secret-key", tmp_path / "l.sk", "--keys-out",
               tmp_path / "l.keys").strip().encode()
    l_keys = open(tmp_path / "l.keys", "rb").read()
    expect_400(server, [bytes_input("ENCRYPTED_INPUT", req), bytes_input("EVALUATION_KEYS", [l_keys]),
                        bytes_input("KEY_ID", [l_id])], "layout mismatch")
    np.save(tmp_path / "one.npy", np.load(batch["dir"] / "x.npy")[:1])
    run(heinfer_bin, "encrypt", batch["model_dir"], "--secret-key", tmp_path / "l.sk", "--input",
        tmp_path / "one.npy", "-o", tmp_path / "l.ct")
    l_ct = read_elements(tmp_path / "l.ct")
    assert len(l_ct) == 1
    # A valid layout-L request registers the L bundle; its KEY_ID then refuses a T batch,
    # the T bundle's KEY_ID refuses an L ciphertext, and one request holds one layout.
    infer(server, [bytes_input("ENCRYPTED_INPUT", l_ct), bytes_input("EVALUATION_KEYS", [l_keys]),
                   bytes_input("KEY_ID", [l_id])])
    expect_400(server, [bytes_input("ENCRYPTED_INPUT", req), bytes_input("KEY_ID", [l_id])], "layout mismatch")
    expect_400(server, [bytes_input("ENCRYPTED_INPUT", l_ct), kid], "layout mismatch")
    expect_400(server, [bytes_input("ENCRYPTED_INPUT", req[:-1] + l_ct), kid], "layout mismatch")
    expect_400(server, [bytes_input("ENCRYPTED_INPUT", l_ct[:1] + req[1:]), kid], "layout mismatch")
    # Mixed key ids: KEY_ID must name one bundle, and the one sent with it.
    expect_400(server, [bytes_input("ENCRYPTED_INPUT", req), bytes_input("KEY_ID", [key_id.encode(), key_id.encode()])])
    expect_400(server, [bytes_input("ENCRYPTED_INPUT", req), bytes_input("EVALUATION_KEYS", [keys]),
                        bytes_input("KEY_ID", [key_id.encode()])], "does not name")
    # Other requests live on: the batch still decrypts to the same classes.
    out = infer(server, [bytes_input("ENCRYPTED_INPUT", req), kid])
    write_result(tmp_path / "res.bin", list(out))
    run(heinfer_bin, "batch", "decrypt", batch["model_dir"], "--secret-key", batch["dir"] / "t.sk", "--samples",
        BATCH, tmp_path / "res.bin", "-o", tmp_path / "y.npy")
    y = np.load(tmp_path / "y.npy")
    assert np.mean(np.argmax(y, 1) == np.argmax(batch["logits"], 1)) >= 0.995


def test_python_sdk_picks_layout_t_for_a_batch_and_agrees(server, batch, tmp_path):
    """The Python SDK (heinfer.client_for): layout auto picks T for 4,096 digits and L for one,
    saying why; the batch through tritonclient agrees with onnxruntime; a layout-T key file
    is refused by the layout-L client, and a CKKS spec by the BGV client."""
    import heinfer
    spec = heinfer.client_spec_from_config(batch["model_dir"])
    one = heinfer.client_for(spec, samples=1)
    assert type(one) is heinfer.Client and "layout L for 1 samples" in one.layout_reason, one.layout_reason
    c = heinfer.client_for(spec, samples=BATCH, model_name=server.model)
    assert isinstance(c, heinfer.BatchClient) and c.layout == "T", c
    assert "layout T for 4096 samples" in c.layout_reason and "L ≈" in c.layout_reason, c.layout_reason
    assert c.max_batch >= BATCH and c.input_size == 64 and c.num_outputs == 10
    x = np.load(batch["dir"] / "x.npy")
    cli = th.InferenceServerClient(server.http_url, connection_timeout=600, network_timeout=600)
    y = c.infer(cli, x)
    assert y.shape == (BATCH, 10)
    assert float(np.mean(np.argmax(y, 1) == np.argmax(batch["logits"], 1))) >= 0.995
    assert np.max(np.abs(y - batch["logits"])) < 0.5
    # Too many samples for one request: refused by the client, before anything is sent.
    with pytest.raises(heinfer.InputError, match="at most"):
        c.encrypt_batch(np.zeros((c.max_batch + 1, 64)))
    # Keys and specs of another scheme: clear exceptions.
    c.save_secret_key(tmp_path / "t.sk")
    with pytest.raises(heinfer.KeyFileError):
        heinfer.Client.load(spec, tmp_path / "t.sk")  # a layout-T key is not the layout-L parameters' key
    with pytest.raises(heinfer.SpecError, match="(?i)ckks model.s client spec, not a BGV one"):
        heinfer.BgvClient(spec)


def decrypt_agreement(heinfer_bin, batch, out, path):
    write_result(path.with_suffix(".bin"), list(out))
    run(heinfer_bin, "batch", "decrypt", batch["model_dir"], "--secret-key", batch["dir"] / "t.sk", "--samples",
        BATCH, path.with_suffix(".bin"), "-o", path.with_suffix(".npy"))
    y = np.load(path.with_suffix(".npy"))
    return float(np.mean(np.argmax(y, 1) == np.argmax(batch["logits"], 1))), y


def test_a_batch_in_parts_is_assembled_and_answered_by_its_last_part(server, batch, heinfer_bin, tmp_path):
    """Issue 17 item 4: a batch sent in four requests tagged BATCH_PART, out of order; the
    first three answer an empty ENCRYPTED_OUTPUT, the last the whole batch's answer."""
    req, kid = batch["req"], bytes_input("KEY_ID", [batch["key_id"]])
    chunks = [req[0:10], req[10:30], req[30:47], req[47:64]]
    bid = f"parts-{server.kind}"
    for k in (2, 0, 3):
        # The first part registers the keys (idempotent), so this test runs alone too.
        keys = [bytes_input("EVALUATION_KEYS", [batch["keys"]])] if k == 2 else []
        out = infer(server, [bytes_input("ENCRYPTED_INPUT", chunks[k]), kid,
                             bytes_input("BATCH_PART", [f"{bid}:{k}/4".encode()]), *keys])
        assert len(out) == 0, f"part {k} of 4 answered {len(out)} ciphertexts before the batch was whole"
    out = infer(server, [bytes_input("ENCRYPTED_INPUT", chunks[1]), kid,
                         bytes_input("BATCH_PART", [f"{bid}:1/4".encode()])])
    assert len(out) == 10
    agree, y = decrypt_agreement(heinfer_bin, batch, out, tmp_path / "parts")
    assert agree >= 0.995, agree
    assert np.max(np.abs(y - batch["logits"])) < 0.5
    # The same batch id is free again once answered.
    out = infer(server, [bytes_input("ENCRYPTED_INPUT", req), kid, bytes_input("BATCH_PART", [f"{bid}:0/1".encode()])])
    assert len(out) == 10


def test_bad_parts_are_refused_and_an_abandoned_batch_times_out(server, batch, heinfer_bin, tmp_path):
    """Issue 17 item 8: a part under another key id, a part sent twice, a part count that
    changes, more ciphertexts than the batch holds, a malformed tag, a tag on a layout-L
    request, and a batch whose last part never comes (dropped after the model's
    heinfer_batch_timeout_s, a late part told so) — each refused, the batch or the server
    otherwise untouched."""
    req, keys, kid = batch["req"], batch["keys"], bytes_input("KEY_ID", [batch["key_id"]])

    def part(elems, tag, *extra):
        return [bytes_input("ENCRYPTED_INPUT", elems), bytes_input("BATCH_PART", [tag.encode()]), *extra]

    other_id = run(heinfer_bin, "batch", "keygen", batch["model_dir"], "--secret-key", tmp_path / "o.sk",
                   "--keys-out", tmp_path / "o.keys").strip().encode()
    other = [bytes_input("EVALUATION_KEYS", [open(tmp_path / "o.keys", "rb").read()]), bytes_input("KEY_ID", [other_id])]
    bid = f"bad-{server.kind}"
    assert len(infer(server, part(req[:32], f"{bid}:0/2", kid, bytes_input("EVALUATION_KEYS", [keys])))) == 0
    expect_400(server, part(req[32:], f"{bid}:1/2", *other), "one batch is under one key")
    expect_400(server, part(req[:32], f"{bid}:0/2", kid), "already has part 0")
    expect_400(server, part(req[32:], f"{bid}:1/3", kid), "started as 2 parts")
    for tag in ["no-part", f"{bid}:2/2", "sp ace:0/2", "x:0/0"]:
        expect_400(server, part(req[32:], tag, kid), "BATCH_PART must be")
    # After all that the batch is as it was: its right last part completes it.
    out = infer(server, part(req[32:], f"{bid}:1/2", kid))
    assert len(out) == 10
    assert decrypt_agreement(heinfer_bin, batch, out, tmp_path / "after_bad")[0] >= 0.995
    # More ciphertexts than one per feature: the batch can never be whole and is dropped.
    assert len(infer(server, part(req, f"{bid}-big:0/2", kid))) == 0
    expect_400(server, part(req[:1], f"{bid}-big:1/2", kid), "would hold 65 ciphertexts", "dropped")
    # A tag on a layout-L request.
    l_id = run(heinfer_bin, "keygen", batch["model_dir"], "--secret-key", tmp_path / "l.sk", "--keys-out",
               tmp_path / "l.keys").strip().encode()
    np.save(tmp_path / "one.npy", np.load(batch["dir"] / "x.npy")[:1])
    run(heinfer_bin, "encrypt", batch["model_dir"], "--secret-key", tmp_path / "l.sk", "--input",
        tmp_path / "one.npy", "-o", tmp_path / "l.ct")
    expect_400(server, part(read_elements(tmp_path / "l.ct"), "l:0/1",
                            bytes_input("EVALUATION_KEYS", [open(tmp_path / "l.keys", "rb").read()]),
                            bytes_input("KEY_ID", [l_id])),
               "BATCH_PART is for layout-T batches")
    # Abandoned: the first part only, then nothing for longer than the timeout.
    assert len(infer(server, part(req[:40], f"{bid}-gone:0/2", kid))) == 0
    time.sleep(BATCH_TIMEOUT_S + 2.5)
    expect_400(server, part(req[40:], f"{bid}-gone:1/2", kid), "timed out", "1 of 2 parts", "send the whole batch again")
    # The id is free again, and one-request batches were never affected.
    assert len(infer(server, part(req[:40], f"{bid}-gone:0/2", kid))) == 0
    assert len(infer(server, part(req[40:], f"{bid}-gone:1/2", kid))) == 10
    out = infer(server, [bytes_input("ENCRYPTED_INPUT", req), kid])
    assert decrypt_agreement(heinfer_bin, batch, out, tmp_path / "whole")[0] >= 0.995


def test_python_sdk_sends_a_batch_in_parts(server, batch):
    """BatchClient.infer(parts=3): three tagged requests through tritonclient, one answer."""
    import heinfer
    spec = heinfer.client_spec_from_config(batch["model_dir"])
    c = heinfer.client_for(spec, layout="T", model_name=server.model)
    x = np.load(batch["dir"] / "x.npy")[:1000]
    cli = th.InferenceServerClient(server.http_url, connection_timeout=600, network_timeout=600)
    y = c.infer(cli, x, parts=3)
    assert y.shape == (1000, 10)
    assert float(np.mean(np.argmax(y, 1) == np.argmax(batch["logits"][:1000], 1))) >= 0.995
    reqs = c.part_inputs(x[:5], 4)
    assert len(reqs) == 4 and [len(r) for r in reqs] == [3, 3, 3, 3]
    with pytest.raises(heinfer.InputError, match="1 to 64 parts"):
        c.part_inputs(x[:5], 65)
