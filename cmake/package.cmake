# The Debian package (deploy/dev.sh package; docs/OPERATIONS.md): the three
# binaries, the migrations, the systemd unit, the config file (a conffile)
# and the docs, installed under /usr by CPack's DEB generator. The runtime
# libraries become dependencies through dpkg-shlibdeps. The maintainer
# scripts (deploy/debian/) make and remove the quorum system user.
include(GNUInstallDirs)
# cpack and `make install` do not rebuild the whole tree first (it takes
# minutes; the tests package a build that is already complete):
# deploy/dev.sh package builds before it packages.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

install(TARGETS quorumd quorumctl quorum-agent RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# quorumd finds them as ../share/quorum/sql from its own folder.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sql/ DESTINATION ${CMAKE_INSTALL_DATADIR}/quorum/sql
  FILES_MATCHING PATTERN "*.sql")
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/quorumd.service
  DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/quorumd.conf DESTINATION /etc/quorum
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/OPERATIONS.md
  ${PROJECT_SOURCE_DIR}/docs/DESIGN.md ${PROJECT_SOURCE_DIR}/docs/API.md
  ${PROJECT_SOURCE_DIR}/deploy/prometheus/quorum.rules.yml
  DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME quorum)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "labeling-task broker for distributed annotator crews")
set(CPACK_PACKAGE_DESCRIPTION "Quorum leases labeling tasks to annotator agents through Redis \
and stores every annotation in PostgreSQL: quorumd (the broker, HTTPS API), quorumctl (the \
managers' command line) and quorum-agent (the annotators' client).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # quorum_<version>_amd64.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "Quorum maintainers <quorum@localhost>")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql (>= 15), redis-server, prometheus")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
  ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES TRUE)
include(CPack)
