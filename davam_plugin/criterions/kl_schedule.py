"""KL-weight annealing shared by the criteria with a Gaussian KL term (``davam`` for GAVAM /
VAE+Attn, ``awd_elbo``).

    w(u) = start + (end - start) * min(1, u / warmup)        (w = end when warmup = 0)

``u`` is the model's update counter (``set_num_updates``), so a resumed run continues the
schedule exactly.
"""

from davam_plugin.criterions.options import check_non_negative
from davam_plugin.metrics import linear_warmup


class KLWeightSchedule:
    def init_kl_schedule(self, start: float, end: float, warmup_updates: int) -> None:
        check_non_negative(("--kl-warmup-updates", warmup_updates), ("--kl-weight-start", start), ("--kl-weight-max", end))
        self.kl_weight_start = start
        self.kl_weight_max = end
        self.kl_warmup_updates = warmup_updates

    def kl_weight(self, num_updates: int) -> float:
        return linear_warmup(num_updates, self.kl_weight_start, self.kl_weight_max, self.kl_warmup_updates)
