"""The CNN+LSTM of the original design.

Per time step, the packet and TLS-record columns are embedded linearly (x -> xA); the
flow's static features (TLS metadata, certificate, HTTP request) and its URL TF-IDF vector
are embedded linearly too and broadcast to every step. Dropout, then 1-D convolutions with
several kernel widths and ReLU (no pooling) extract local patterns; an LSTM runs over their
output; its last hidden state goes through dropout into a softmax layer, which is
L2-regularised (weight decay on that layer only) and trained with cross-entropy.

The exported graph has two outputs: `probs` (softmax of logits / temperature) and
`embedding` (the LSTM's last hidden state, the softmax layer's input), which online
learning in the sensor uses to update the head."""

import torch
from torch import nn


class NightjarNet(nn.Module):
    def __init__(self, n_static: int, seq_cols: int, vocab: int, d_seq=24, d_static=32, d_url=16,
                 conv=32, kernels=(3, 5), hidden=64, dropout=0.2, classes=3):
        super().__init__()
        self.seq_embed = nn.Linear(seq_cols, d_seq, bias=False)
        self.static_embed = nn.Linear(n_static, d_static)
        self.url_embed = nn.Linear(max(vocab, 1), d_url)
        self.drop_in = nn.Dropout(dropout)
        width = d_seq + d_static + d_url
        self.convs = nn.ModuleList([nn.Conv1d(width, conv, k, padding=k // 2) for k in kernels])
        self.lstm = nn.LSTM(conv * len(kernels), hidden, batch_first=True)
        self.drop_out = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, classes)
        self.register_buffer("temperature", torch.ones(()))

    def embed(self, static, seq, url):
        steps = seq.shape[1]
        per_step = self.seq_embed(seq)
        flow = torch.cat([self.static_embed(static), self.url_embed(url)], dim=1)
        x = torch.cat([per_step, flow.unsqueeze(1).expand(-1, steps, -1)], dim=2)
        x = self.drop_in(x).transpose(1, 2)
        x = torch.cat([torch.relu(c(x)) for c in self.convs], dim=1).transpose(1, 2)
        _, (h, _) = self.lstm(x)
        return h[-1]

    def forward(self, static, seq, url):
        """Logits (training)."""
        return self.head(self.drop_out(self.embed(static, seq, url)))


class Exported(nn.Module):
    """What goes into the ONNX file: calibrated probabilities and the embedding."""

    def __init__(self, net: NightjarNet):
        super().__init__()
        self.net = net

    def forward(self, static, seq, url):
        emb = self.net.embed(static, seq, url)
        probs = torch.softmax(self.net.head(emb) / self.net.temperature, dim=1)
        return probs, emb
