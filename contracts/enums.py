"""Closed value sets of wire contract v1. Members are spelled exactly as on the wire."""

from enum import StrEnum, unique


@unique
class FormeJuridique(StrEnum):
    """Legal form of an organism; only the first three may be entrusted under alinéa 1."""

    MUTUELLE = "MUTUELLE"
    SOCIETE_ASSURANCE = "SOCIETE_ASSURANCE"
    GROUPEMENT_SOCIETES_ASSURANCE = "GROUPEMENT_SOCIETES_ASSURANCE"
    ORGANISME_SECURITE_SOCIALE = "ORGANISME_SECURITE_SOCIALE"


@unique
class ObjetConvention(StrEnum):
    """What a convention entrusts: alinéa 1 (collection) or alinéa 2 (cash benefits)."""

    ENCAISSEMENT_CONTENTIEUX_COTISATIONS = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"
    VERSEMENT_PRESTATIONS_ESPECES = "VERSEMENT_PRESTATIONS_ESPECES"


@unique
class ModeAffiliation(StrEnum):
    """How an insured person came to be attached to an organism."""

    CHOIX = "CHOIX"
    OFFICE = "OFFICE"


@unique
class Categorie(StrEnum):
    """L611-1 category of the insured person."""

    PROFESSION_LIBERALE = "PROFESSION_LIBERALE"
    ARTISAN = "ARTISAN"
    COMMERCANT = "COMMERCANT"


@unique
class Nature(StrEnum):
    """Kind of cash benefit (prestation en espèces)."""

    IJ_MALADIE = "IJ_MALADIE"
    IJ_MATERNITE = "IJ_MATERNITE"
    ALLOCATION_REPOS_MATERNEL = "ALLOCATION_REPOS_MATERNEL"
    IJ_PATERNITE = "IJ_PATERNITE"


@unique
class Motif(StrEnum):
    """Why a decision is what it is; meanings in ``docs/law.md``."""

    PERIODE_ANTERIEURE_A_2017 = "PERIODE_ANTERIEURE_A_2017"
    RECOUVREMENT_URSSAF = "RECOUVREMENT_URSSAF"
    CATEGORIE_HORS_CHAMP = "CATEGORIE_HORS_CHAMP"
    AFFILIATION_INCONNUE = "AFFILIATION_INCONNUE"
    ORGANISME_INELIGIBLE = "ORGANISME_INELIGIBLE"
    AUCUNE_CONVENTION = "AUCUNE_CONVENTION"
    NON_DELEGUE = "NON_DELEGUE"
    SOLDE_NUL = "SOLDE_NUL"
    COTISATION_INCONNUE = "COTISATION_INCONNUE"


@unique
class Recouvreur(StrEnum):
    """Who collects a contribution that is not delegated to an organism."""

    URSSAF = "URSSAF"
    CAISSE_DE_BASE = "CAISSE_DE_BASE"
