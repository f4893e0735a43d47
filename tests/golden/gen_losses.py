"""Golden values for the fused losses (tests/test_losses.cpp), torch in float64, written independently of
distill's derivations: each loss is the plain PyTorch expression the method's reference code uses.

  nt_xent        z1, z2 [4, 5] (z2 row 1 is zero), tau 0.2: F.normalize + z z^T / tau, diagonal -inf, CE
  info_nce       a, b [4, 5], tau 0.1: CLIP (CE(rows) + CE(columns)) / 2
  moco           q, k [3, 5], queue [6, 5] (unit rows), tau 0.07: CE([q.k, q Q^T] / tau, 0); k requires grad
  supcon         z [6, 5], labels [0 1 0 2 1 0] (class 2 has no positive), weights w [6], tau 0.1 (SupCon/MCL code)
  supcon_cross   a, b [6, 5], same labels and weights, tau 0.1, same-index pair excluded from both sets
  softkl_self    zs [6, 5] (student), zt [6, 4] (teacher), tau 0.1, T 3, diagonal removed (DCRLS)
  softkl_cross   a, b [5, 5] (student a b^T), teacher b a^T detached, tau 0.07, T 3, diagonal kept, weights w5
  kd             s, t [4, 7] (row 2: +-1e4 logits, row 3: one-hot-like teacher), T 3, teacher detached;
                 kd2: rows 0, 1, 3 with the teacher gradient
  nmse           a, b [4, 5] (a row 2 zero): F.mse_loss(F.normalize(a), F.normalize(b), reduction='sum')
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

import golden_io


def t(x, grad=True):
    return torch.tensor(x, dtype=torch.float64, requires_grad=grad)


def supcon_rows(s, labels, w):
    n = s.shape[0]
    eye = torch.eye(n, dtype=torch.bool)
    logits = s.masked_fill(eye, float("-inf"))
    log_prob = s - torch.logsumexp(logits, dim=1, keepdim=True)
    lab = torch.tensor(labels)
    pos = ((lab[:, None] == lab[None, :]) & ~eye).double()
    npos = pos.sum(1)
    mean_pos = (pos * log_prob.masked_fill(eye, 0.0)).sum(1) / torch.where(npos > 0, npos, torch.ones_like(npos))
    return -(w * mean_pos).mean()


def soft_kl(x, y, T, w, exclude_diag):
    n = x.shape[0]
    if exclude_diag:
        keep = ~torch.eye(n, dtype=torch.bool)
        x = x[keep].view(n, n - 1)
        y = y[keep].view(n, n - 1)
    rows = F.kl_div(F.log_softmax(x / T, 1), F.softmax(y / T, 1), reduction="none").sum(1)
    return (w * rows).mean() * T * T


def main(outdir):
    rng = np.random.default_rng(11)
    out = {}

    # NT-Xent
    z1 = rng.normal(size=(4, 5))
    z2 = rng.normal(size=(4, 5))
    z2[1] = 0.0
    a, b = t(z1), t(z2)
    z = F.normalize(torch.cat([a, b]), dim=1)
    s = z @ z.T / 0.2
    s = s.masked_fill(torch.eye(8, dtype=torch.bool), float("-inf"))
    loss = F.cross_entropy(s, torch.tensor([4, 5, 6, 7, 0, 1, 2, 3]))
    loss.backward()
    out.update(ntx_z1=z1, ntx_z2=z2, ntx_loss=[loss.item()], ntx_dz1=a.grad.numpy(), ntx_dz2=b.grad.numpy())

    # CLIP-style InfoNCE
    ia = rng.normal(size=(4, 5))
    ib = rng.normal(size=(4, 5))
    a, b = t(ia), t(ib)
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / 0.1
    lab = torch.arange(4)
    loss = 0.5 * (F.cross_entropy(logits, lab) + F.cross_entropy(logits.T, lab))
    loss.backward()
    out.update(clip_a=ia, clip_b=ib, clip_loss=[loss.item()], clip_da=a.grad.numpy(), clip_db=b.grad.numpy())

    # MoCo
    mq = rng.normal(size=(3, 5))
    mk = rng.normal(size=(3, 5))
    mqueue = rng.normal(size=(6, 5))
    mqueue /= np.linalg.norm(mqueue, axis=1, keepdims=True)
    q, k = t(mq), t(mk)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ torch.tensor(mqueue).T], dim=1) / 0.07
    loss = F.cross_entropy(logits, torch.zeros(3, dtype=torch.long))
    loss.backward()
    out.update(moco_q=mq, moco_k=mk, moco_queue=mqueue, moco_loss=[loss.item()], moco_dq=q.grad.numpy(),
               moco_dk=k.grad.numpy())

    # Supervised contrastive (VCL) and its cross-network form (ICL)
    labels = [0, 1, 0, 2, 1, 0]
    sz = rng.normal(size=(6, 5))
    sw = rng.uniform(0.3, 0.8, size=6)
    zz, ww = t(sz), t(sw)
    zn = F.normalize(zz, dim=1)
    loss = supcon_rows(zn @ zn.T / 0.1, labels, ww)
    loss.backward()
    out.update(sup_z=sz, sup_labels=np.array(labels, dtype=np.float64), sup_w=sw, sup_loss=[loss.item()],
               sup_dz=zz.grad.numpy(), sup_dw=ww.grad.numpy())

    ca = rng.normal(size=(6, 5))
    cb = rng.normal(size=(6, 5))
    a, b, ww = t(ca), t(cb), t(sw)
    loss = supcon_rows(F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / 0.1, labels, ww)
    loss.backward()
    out.update(icl_a=ca, icl_b=cb, icl_loss=[loss.item()], icl_da=a.grad.numpy(), icl_db=b.grad.numpy(),
               icl_dw=ww.grad.numpy())

    # Soft contrastive KL, DCRLS self-distillation form (teacher of another width, diagonal removed)
    ks = rng.normal(size=(6, 5))
    kt = rng.normal(size=(6, 4))
    zs = t(ks)
    zsn = F.normalize(zs, dim=1)
    ztn = F.normalize(torch.tensor(kt), dim=1)
    loss = soft_kl(zsn @ zsn.T / 0.1, ztn @ ztn.T / 0.1, 3.0, torch.ones(6, dtype=torch.float64), True)
    loss.backward()
    out.update(skl_zs=ks, skl_zt=kt, skl_loss=[loss.item()], skl_dzs=zs.grad.numpy())

    # Soft contrastive KL, MCL soft-ICL form: student a b^T, teacher b a^T (detached), weights
    xa = rng.normal(size=(5, 5))
    xb = rng.normal(size=(5, 5))
    xw = rng.uniform(0.3, 0.8, size=5)
    a, b, ww = t(xa), t(xb), t(xw)
    an, bn = F.normalize(a, dim=1), F.normalize(b, dim=1)
    loss = soft_kl(an @ bn.T / 0.07, (bn @ an.T / 0.07).detach(), 3.0, ww, False)
    loss.backward()
    out.update(sicl_a=xa, sicl_b=xb, sicl_w=xw, sicl_loss=[loss.item()], sicl_da=a.grad.numpy(),
               sicl_db=b.grad.numpy(), sicl_dw=ww.grad.numpy())

    # KD-KL on logits
    ks_ = rng.normal(0.0, 2.0, size=(4, 7))
    kt_ = rng.normal(0.0, 2.0, size=(4, 7))
    ks_[2] = [1e4, -1e4, 0.0, 9999.0, -3.0, 1e4, 2.0]
    kt_[2] = [-1e4, 1e4, 5.0, -9999.0, 1e4, 0.0, -2.0]
    kt_[3] = [0.0, 0.0, 200.0, 0.0, 0.0, 0.0, 0.0]
    s_, t_ = t(ks_), t(kt_, grad=False)
    loss = F.kl_div(F.log_softmax(s_ / 3.0, 1), F.softmax(t_ / 3.0, 1), reduction="batchmean") * 9.0
    loss.backward()
    out.update(kd_s=ks_, kd_t=kt_, kd_loss=[loss.item()], kd_ds=s_.grad.numpy())
    # Teacher gradient without the +-1e4 row: there torch's own teacher gradient is NaN (its xlogy backward
    # evaluates log(0) where the teacher softmax underflows), while distill's stays finite.
    rows = [0, 1, 3]
    s_, t_ = t(ks_[rows]), t(kt_[rows])
    loss = F.kl_div(F.log_softmax(s_ / 3.0, 1), F.softmax(t_ / 3.0, 1), reduction="batchmean") * 9.0
    loss.backward()
    out.update(kd2_loss=[loss.item()], kd2_ds=s_.grad.numpy(), kd2_dt=t_.grad.numpy())

    # Normalised MSE (DisCo)
    na_ = rng.normal(size=(4, 5))
    nb_ = rng.normal(size=(4, 5))
    na_[2] = 0.0
    a, b = t(na_), t(nb_)
    loss = F.mse_loss(F.normalize(a, dim=1), F.normalize(b, dim=1), reduction="sum")
    loss.backward()
    out.update(nmse_a=na_, nmse_b=nb_, nmse_loss=[loss.item()], nmse_da=a.grad.numpy(), nmse_db=b.grad.numpy())

    path = os.path.join(outdir, "losses.txt")
    golden_io.write(path, out, comment=f"torch {torch.__version__} fused-loss golden values (float64), "
                                       "generated by gen_losses.py")
    print(f"  wrote {path}")


if __name__ == "__main__":
    main(os.path.dirname(os.path.abspath(__file__)))
