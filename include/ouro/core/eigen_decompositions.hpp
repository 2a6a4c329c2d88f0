// Eigen's dense decompositions, as ouro uses them, with opt-in separate compilation.
//
// Why: one Eigen::BDCSVD<MatrixXd> (the OLE score's nuclear norm) costs g++ 12 about 40 s to
// instantiate and optimise, and a SelfAdjointEigenSolver (FID, PCA, spectral clustering) several
// more; header-only, every file of a program that calls them pays that again. A program that
// defines OURO_SEPARATE_EIGEN in all its files (with the same compiler flags everywhere) sees only
// declarations here (explicit instantiation declarations, `extern template`), and exactly one of
// its files provides the code:
//
//     #define OURO_INSTANTIATE_EIGEN
//     #include "ouro/core/eigen_decompositions.hpp"
//
// ouro's own tests and examples build that way (CMake target ouro_eigen_instances); the library
// stays header-only for everyone else, who need do nothing. This is the pattern of spdlog's
// SPDLOG_COMPILED_LIB and Asio's separate compilation. Every ouro header that uses one of these
// decompositions includes this header, so the declarations always precede the uses.
#pragma once

#include <Eigen/Dense>

#if defined(OURO_INSTANTIATE_EIGEN)
#define OURO_EIGEN_INSTANCE_ template class
#elif defined(OURO_SEPARATE_EIGEN)
#define OURO_EIGEN_INSTANCE_ extern template class
#endif

#ifdef OURO_EIGEN_INSTANCE_
OURO_EIGEN_INSTANCE_ Eigen::BDCSVD<Eigen::MatrixXd>;
// BDCSVD solves its small blocks with this JacobiSVD.
OURO_EIGEN_INSTANCE_ Eigen::JacobiSVD<Eigen::MatrixXd, Eigen::ColPivHouseholderQRPreconditioner>;
OURO_EIGEN_INSTANCE_ Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>;
OURO_EIGEN_INSTANCE_ Eigen::HouseholderQR<Eigen::MatrixXd>;
#undef OURO_EIGEN_INSTANCE_
#endif

// Member and free function templates are not covered by a class's explicit instantiation.
#if defined(OURO_INSTANTIATE_EIGEN)
#define OURO_EIGEN_INSTANCE_ template
#elif defined(OURO_SEPARATE_EIGEN)
#define OURO_EIGEN_INSTANCE_ extern template
#endif
#ifdef OURO_EIGEN_INSTANCE_
OURO_EIGEN_INSTANCE_ Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>&
Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>::compute<Eigen::MatrixXd>(const Eigen::EigenBase<Eigen::MatrixXd>&, int);
OURO_EIGEN_INSTANCE_ void Eigen::internal::tridiagonalization_inplace<Eigen::MatrixXd, Eigen::VectorXd>(
    Eigen::MatrixXd&, Eigen::VectorXd&);
#undef OURO_EIGEN_INSTANCE_
#endif
