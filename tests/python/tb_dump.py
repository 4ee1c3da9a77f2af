"""Reads a TensorBoard log directory with TensorBoard's own reader (EventAccumulator) and prints
what it finds as JSON, for tests/tensorboard.rs: per run (a subdirectory, "." for the root), the
scalars by tag as [step, value] pairs, the histograms by tag as [step, count, min, max], the text
summaries by tag as [step, text], and the HParams plugin's data by tag, decoded."""

import json
import os
import sys

from google.protobuf import json_format
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util import tensor_util


def run_dirs(logdir):
    for root, _dirs, files in os.walk(logdir):
        if any("tfevents" in f for f in files):
            yield os.path.relpath(root, logdir)


def plugin_tags(acc, plugin):
    """The tags of a plugin's summaries, with their content (none when the run has none)."""
    try:
        return acc.PluginTagToContent(plugin)
    except KeyError:
        return {}


def read(path):
    acc = ea.EventAccumulator(
        path,
        size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0},
    )
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "histograms": {}, "text": {}, "hparams": {}}
    for tag in tags["scalars"]:
        out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    for tag in tags["histograms"]:
        out["histograms"][tag] = [
            [e.step, e.histogram_value.num, e.histogram_value.min, e.histogram_value.max]
            for e in acc.Histograms(tag)
        ]
    for tag in plugin_tags(acc, "text"):
        out["text"][tag] = [
            [e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode()]
            for e in acc.Tensors(tag)
        ]
    for tag, content in plugin_tags(acc, "hparams").items():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        out["hparams"][tag] = json_format.MessageToDict(data)
    return out


def main():
    logdir = sys.argv[1]
    print(json.dumps({run: read(os.path.join(logdir, run)) for run in sorted(run_dirs(logdir))}))


if __name__ == "__main__":
    main()
