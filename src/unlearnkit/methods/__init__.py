"""The method registry. Adding a method = its module + one line here + its doc card."""

from unlearnkit.core.preparation import PREPARATIONS
from unlearnkit.core.sisa import SISAEnsemble, train_sisa
from unlearnkit.core.smu import SMUModel, train_smu
from unlearnkit.methods.bad_teacher import BadTeacher
from unlearnkit.methods.base import KINDS, NEEDS, Context, Outcome, Unlearner
from unlearnkit.methods.boundary import BoundaryExpand, BoundaryShrink
from unlearnkit.methods.filtration import LinearFiltration
from unlearnkit.methods.finetune import Finetune
from unlearnkit.methods.fisher_forgetting import FisherForgetting
from unlearnkit.methods.forsaken import Forsaken
from unlearnkit.methods.l1_sparse import L1Sparse
from unlearnkit.methods.neggrad import NegGrad, NegGradPlus
from unlearnkit.methods.random_label import RandomLabel, SalUn
from unlearnkit.methods.retrain import Retrain
from unlearnkit.methods.scrub import SCRUB, AttentionSCRUB, SimilaritySCRUB
from unlearnkit.methods.selective import RLD, RND, SelectiveForgetting, Truncation
from unlearnkit.methods.sisa import SISA, SISADP
from unlearnkit.methods.smu import SMU
from unlearnkit.methods.ssd import LFSSD, SSD
from unlearnkit.methods.two_stage import TwoStage
from unlearnkit.methods.unsir import UNSIR
from unlearnkit.registry import Registry

METHODS: Registry[type[Unlearner]] = Registry("method")
METHODS.register("retrain", Retrain)
METHODS.register("finetune", Finetune)
METHODS.register("neggrad", NegGrad)
METHODS.register("neggrad_plus", NegGradPlus)
METHODS.register("scrub", SCRUB)
METHODS.register("scrub_attention", AttentionSCRUB)
METHODS.register("scrub_similarity", SimilaritySCRUB)
METHODS.register("two_stage", TwoStage)
METHODS.register("filtration", LinearFiltration)
METHODS.register("forsaken", Forsaken)
METHODS.register("sisa", SISA)
METHODS.register("sisa_dp", SISADP)
METHODS.register("smu", SMU)
METHODS.register("rnd", RND)
METHODS.register("rld", RLD)
METHODS.register("truncation", Truncation)
METHODS.register("selective_forgetting", SelectiveForgetting)
METHODS.register("random_label", RandomLabel)
METHODS.register("salun", SalUn)
METHODS.register("l1_sparse", L1Sparse)
METHODS.register("bad_teacher", BadTeacher)
METHODS.register("ssd", SSD)
METHODS.register("lfssd", LFSSD)
METHODS.register("boundary_shrink", BoundaryShrink)
METHODS.register("boundary_expand", BoundaryExpand)
METHODS.register("fisher_forgetting", FisherForgetting)
METHODS.register("unsir", UNSIR)


def make_method(name: str, **params: object) -> Unlearner:
    """Build a registered method with its settings; settings are validated here too."""
    method = METHODS.get(name)(**params)
    method.validate_params()
    return method


__all__ = [
    "KINDS",
    "LFSSD",
    "METHODS",
    "NEEDS",
    "PREPARATIONS",
    "RLD",
    "RND",
    "SCRUB",
    "SISA",
    "SISADP",
    "SMU",
    "SSD",
    "UNSIR",
    "AttentionSCRUB",
    "BadTeacher",
    "BoundaryExpand",
    "BoundaryShrink",
    "Context",
    "Finetune",
    "FisherForgetting",
    "Forsaken",
    "L1Sparse",
    "LinearFiltration",
    "NegGrad",
    "NegGradPlus",
    "Outcome",
    "RandomLabel",
    "Retrain",
    "SISAEnsemble",
    "SMUModel",
    "SalUn",
    "SelectiveForgetting",
    "SimilaritySCRUB",
    "Truncation",
    "TwoStage",
    "Unlearner",
    "make_method",
    "train_sisa",
    "train_smu",
]
