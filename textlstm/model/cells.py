"""Recurrent cells that PyTorch does not ship: the peephole LSTM (Gers & Schmidhuber 2000,
Graves 2013), a drop-in for `nn.LSTM` in `Encoder` (`model.cell = "peephole"`).

Speed: the input projection is one GEMM over all steps; the time loop does one small GEMM per
step plus in-place element-wise work; backward through time is written by hand
(`_PeepholeScan`) instead of letting autograd record ~15 operations per step. On CPU (batch
64, hidden 128) one layer runs forward + backward at 0.5-0.6x the fused `nn.LSTM` kernel and
the whole model trains at 0.8-0.9x the `lstm` cell's speed: see benchmarks/README.md
(`cells.py`). TorchScript (deprecated in torch 2.13, and slower here) and `torch.compile`
(~40 s to compile; far slower over long sequences, where autograd records every step) were
measured and not used.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _scan_forward(xw: torch.Tensor, w_hh: torch.Tensor, peep: torch.Tensor):
    """The recurrence over `xw (seq, batch, 4H)`, whose cell-input block (the third) is doubled,
    as is that block of `w_hh (4H, H)`: tanh(x) = 2σ(2x) - 1 lets i, f and g share one sigmoid
    call, and torch's CPU tanh is several times slower than its sigmoid.

    Returns `hs (seq, batch, H)`, the gates `(seq, batch, 4H)` as i, f, g, o after their
    nonlinearity, the cells `(seq + 1, batch, H)` starting with the zero state, and tanh of the
    cells `(seq, batch, H)`."""
    seq, batch, four_h = xw.shape
    H = four_h // 4
    gates = xw.new_empty(seq, batch, four_h)
    cells = xw.new_zeros(seq + 1, batch, H)
    tanh_c = xw.new_empty(seq, batch, H)
    hs = xw.new_empty(seq, batch, H)
    w_if, w_co, w_hh_t = peep[:2], peep[2], w_hh.t()
    h = xw.new_zeros(batch, H)
    for t in range(seq):
        a = torch.addmm(xw[t], h, w_hh_t)  # (batch, 4H)
        c, gt = cells[t], gates[t]
        a[:, :2 * H].view(batch, 2, H).addcmul_(w_if, c.unsqueeze(1))  # + w_ci c, + w_cf c
        torch.sigmoid(a[:, :3 * H], out=gt[:, :3 * H])
        g = gt[:, 2 * H:3 * H].mul_(2).sub_(1)
        c_new = torch.mul(gt[:, H:2 * H], c, out=cells[t + 1]).addcmul_(gt[:, :H], g)
        o = torch.sigmoid(a[:, 3 * H:].addcmul_(w_co, c_new), out=gt[:, 3 * H:])
        tc = torch.mul(c_new, 2, out=tanh_c[t]).sigmoid_().mul_(2).sub_(1)
        h = torch.mul(o, tc, out=hs[t])
    return hs, gates, cells, tanh_c


def _gate_factors(gates: torch.Tensor, cells: torch.Tensor, tanh_c: torch.Tensor):
    """For all steps at once: `k (seq, batch, 4H)`, the derivatives of the step's loss w.r.t.
    the four pre-activations per unit of the gradient on c_t (i, f, g) or h_t (o), and
    `k_c (seq, batch, H)`, d c_t / d h_t's direct path o (1 - tanh² c)."""
    H = tanh_c.shape[-1]
    i, f, g, o = gates.chunk(4, dim=2)
    k = torch.addcmul(gates, gates, gates, value=-1)  # s (1 - s): σ' of i, f, o
    k[..., :H].mul_(g)
    k[..., H:2 * H].mul_(cells[:-1])
    torch.addcmul(i, i, g * g, value=-1, out=k[..., 2 * H:3 * H]).mul_(0.5)  # d(2σ(2x)-1)/d(2x)
    k[..., 3 * H:].mul_(tanh_c)
    k_c = torch.addcmul(o, o, tanh_c * tanh_c, value=-1)
    return k, k_c


def _scan_backward(dhs: torch.Tensor, dc_last: torch.Tensor, gates: torch.Tensor,
                   cells: torch.Tensor, tanh_c: torch.Tensor, w_hh: torch.Tensor, peep: torch.Tensor):
    """Backward through time: the gradient on the pre-activations `(seq, batch, 4H)`."""
    seq, batch, H = dhs.shape
    k, k_c = _gate_factors(gates, cells, tanh_c)
    f = gates[..., H:2 * H]
    w_ci, w_cf, w_co = peep[0], peep[1], peep[2]
    d_pre = gates.new_empty(seq, batch, 4 * H)
    dc = dc_last
    for t in range(seq - 1, -1, -1):
        dh = dhs[t] if t == seq - 1 else torch.addmm(dhs[t], d_pre[t + 1], w_hh)  # (batch, H)
        da, kt = d_pre[t], k[t]
        da_o = torch.mul(dh, kt[:, 3 * H:], out=da[:, 3 * H:])
        dc = torch.addcmul(dc, dh, k_c[t]).addcmul_(da_o, w_co)  # all of the gradient on c_t
        torch.mul(dc.unsqueeze(1), kt[:, :3 * H].view(batch, 3, H), out=da[:, :3 * H].view(batch, 3, H))
        dc = torch.mul(dc, f[t]).addcmul_(da[:, :H], w_ci).addcmul_(da[:, H:2 * H], w_cf)  # on c_{t-1}
    return d_pre


class _PeepholeScan(torch.autograd.Function):
    """`(xw, w_hh, peep)` → `(hs, c_last)`, with the hand-written backward above."""

    # Under autocast (train.amp) the scan runs in float32 on either device.
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, xw, w_hh, peep):
        hs, gates, cells, tanh_c = _scan_forward(xw, w_hh, peep)
        ctx.save_for_backward(hs, gates, cells, tanh_c, w_hh, peep)
        return hs, cells[-1].clone()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    @torch.amp.custom_bwd(device_type="cpu")
    @torch.autograd.function.once_differentiable
    def backward(ctx, dhs, dc_last):
        hs, gates, cells, tanh_c, w_hh, peep = ctx.saved_tensors
        seq, batch, H = hs.shape
        d_pre = _scan_backward(dhs.contiguous(), dc_last, gates, cells, tanh_c, w_hh, peep)
        d_w_hh = d_peep = None
        if ctx.needs_input_grad[1]:
            d_w_hh = d_pre[1:].reshape(-1, 4 * H).t() @ hs[:-1].reshape(-1, H)  # h_{-1} = 0
        if ctx.needs_input_grad[2]:
            d_if = (d_pre.view(seq, batch, 4, H)[:, :, :2] * cells[:-1].unsqueeze(2)).sum((0, 1))
            d_co = (d_pre[..., 3 * H:] * cells[1:]).sum((0, 1))
            d_peep = torch.cat([d_if, d_co[None]])  # (3, H)
        return d_pre, d_w_hh, d_peep


class PeepholeLSTM(nn.Module):
    """A one-layer, one-direction LSTM with peephole connections (Graves 2013, eq. 7-11):

        i_t = σ(W_xi x_t + W_hi h_{t-1} + w_ci ⊙ c_{t-1} + b_i)
        f_t = σ(W_xf x_t + W_hf h_{t-1} + w_cf ⊙ c_{t-1} + b_f)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ tanh(W_xc x_t + W_hc h_{t-1} + b_c)
        o_t = σ(W_xo x_t + W_ho h_{t-1} + w_co ⊙ c_t + b_o)
        h_t = o_t ⊙ tanh(c_t)

    The peephole weights are diagonal, as in Graves: vectors `weight_ci`, `weight_cf`,
    `weight_co` of size `hidden_size`, multiplied element-wise with the cell. `weight_ih`
    `(4H, input)` and `weight_hh` `(4H, H)` stack the gates in `nn.LSTM`'s order i, f, g (cell
    input), o; there is one `bias` `(4H,)`, since nn.LSTM's second bias adds nothing. Every
    parameter, peepholes included, starts from U(-1/√H, 1/√H) like nn.LSTM's, so the peepholes
    are live from the first step. The state starts at zero.

    Called like `nn.LSTM`: `out, (h_n, c_n) = rnn(x)` with `x (batch, seq, input)` when
    `batch_first`, else `(seq, batch, input)`; `h_n`, `c_n` are `(1, batch, hidden)`. Stack
    layers and directions with `Encoder`.

    >>> rnn = PeepholeLSTM(3, 4, batch_first=True)
    >>> out, (h_n, c_n) = rnn(torch.randn(2, 5, 3))
    >>> tuple(out.shape), tuple(h_n.shape)
    ((2, 5, 4), (1, 2, 4))
    """

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False):
        super().__init__()
        self.input_size, self.hidden_size, self.batch_first = input_size, hidden_size, batch_first
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.weight_ci = nn.Parameter(torch.empty(hidden_size))
        self.weight_cf = nn.Parameter(torch.empty(hidden_size))
        self.weight_co = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"PeepholeLSTM expects a 3-d input with {self.input_size} features "
                             f"in the last dimension, got shape {tuple(x.shape)}")
        H = self.hidden_size
        scale = self.weight_ih.new_ones(4 * H, 1)
        scale[2 * H:3 * H] = 2  # see _scan_forward
        steps = x.transpose(0, 1) if self.batch_first else x  # (seq, batch, input)
        xw = F.linear(steps, self.weight_ih * scale, self.bias * scale[:, 0]).contiguous()  # (seq, batch, 4H)
        peep = torch.stack([self.weight_ci, self.weight_cf, self.weight_co])  # (3, H)
        hs, c_last = _PeepholeScan.apply(xw, self.weight_hh * scale, peep)  # (seq, batch, H)
        out = hs.transpose(0, 1).contiguous() if self.batch_first else hs
        return out, (hs[-1:], c_last[None])

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, batch_first={self.batch_first}"
