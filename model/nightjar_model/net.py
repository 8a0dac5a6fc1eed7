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
    """`chars` > 0 adds the character branch: each of the HTTP request's `chars` bytes is
    embedded linearly (one-hot x matrix, `d_char` wide), the embeddings of
    `chars / steps` consecutive bytes are concatenated and embedded linearly again
    (`d_chars`), and that vector joins the packet/record row of its time step: step t
    reads the request's bytes [t * chars / steps, (t + 1) * chars / steps). The
    convolutions then see 3 and 5 neighbouring chunks at once and the LSTM the whole
    request. TLS flows have no characters (all padding)."""

    def __init__(self, n_static: int, seq_cols: int, vocab: int, d_seq=24, d_static=32, d_url=16,
                 conv=32, kernels=(3, 5), hidden=64, dropout=0.2, classes=3, chars=0, steps=32, d_char=8,
                 d_chars=24):
        super().__init__()
        self.chars = chars
        if chars:
            assert chars % steps == 0
            self.char_embed = nn.Embedding(257, d_char, padding_idx=0)
            self.chunk_embed = nn.Linear(d_char * chars // steps, d_chars)
            self.steps = steps
        self.seq_embed = nn.Linear(seq_cols, d_seq, bias=False)
        self.static_embed = nn.Linear(n_static, d_static)
        self.url_embed = nn.Linear(max(vocab, 1), d_url)
        self.drop_in = nn.Dropout(dropout)
        width = d_seq + d_static + d_url + (d_chars if chars else 0)
        self.convs = nn.ModuleList([nn.Conv1d(width, conv, k, padding=k // 2) for k in kernels])
        self.lstm = nn.LSTM(conv * len(kernels), hidden, batch_first=True)
        self.drop_out = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, classes)
        self.register_buffer("temperature", torch.ones(()))

    def embed(self, static, seq, url, chars=None):
        steps = seq.shape[1]
        per_step = self.seq_embed(seq)
        if self.chars:
            c = self.char_embed(chars).reshape(chars.shape[0], self.steps, -1)
            per_step = torch.cat([per_step, self.chunk_embed(c)], dim=2)
        flow = torch.cat([self.static_embed(static), self.url_embed(url)], dim=1)
        x = torch.cat([per_step, flow.unsqueeze(1).expand(-1, steps, -1)], dim=2)
        x = self.drop_in(x).transpose(1, 2)
        x = torch.cat([torch.relu(c(x)) for c in self.convs], dim=1).transpose(1, 2)
        _, (h, _) = self.lstm(x)
        return h[-1]

    def forward(self, static, seq, url, chars=None):
        """Logits (training)."""
        return self.head(self.drop_out(self.embed(static, seq, url, chars)))


class Exported(nn.Module):
    """What goes into the ONNX file: calibrated probabilities and the embedding."""

    def __init__(self, net: NightjarNet):
        super().__init__()
        self.net = net

    def forward(self, static, seq, url, chars=None):
        emb = self.net.embed(static, seq, url, chars)
        probs = torch.softmax(self.net.head(emb) / self.net.temperature, dim=1)
        return probs, emb
