"""Per-thread torch thread counts for callbacks that run on executor worker threads."""

import threading

_LOCAL = threading.local()


def use_torch_threads(count: int) -> None:
    """
    Limit torch's intra-op threads in the calling thread (set once per thread).

    `torch.set_num_threads` from the main thread does not reach rclpy's executor threads, so
    each heavy callback calls this first; it keeps the command timer's core free on 2 cores.
    """
    if getattr(_LOCAL, 'count', None) == count:
        return
    import torch
    torch.set_num_threads(count)
    _LOCAL.count = count
